"""Shared probe machinery: the schedule, and `measuring`, which guarantees a probe changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from bncli.runtime import preserved_rng


class ProbeBase:
    """Subclass and implement any of on_start / before_update / after_update / on_end / result."""

    name = "probe"

    def __init__(self, every: int) -> None:
        self.every = max(1, int(every))

    def result(self) -> Any:  # pragma: no cover - overridden
        return {}


@contextmanager
def measuring(model: nn.Module, device: torch.device | None = None) -> Iterator[None]:
    """Run measurement code, then put back parameters, gradients, buffers, mode and RNG exactly.

    Measurement code should still prefer functional forms (torch.func.functional_call with
    buffer copies, torch.autograd.grad); this is the safety net that makes the guarantee hold.
    """
    params = [(p, p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
              for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        with preserved_rng(device):
            yield
    finally:
        with torch.no_grad():
            for p, value, grad in params:
                p.copy_(value)
                if grad is None:
                    p.grad = None
                elif p.grad is None:
                    p.grad = grad
                else:
                    p.grad.copy_(grad)
            for b, value in buffers:
                b.copy_(value)
        for m, mode in modes:
            m.training = mode


@contextmanager
def forward_hooks(
    modules: Sequence[tuple[str, nn.Module]],
    fn: Callable[[str, nn.Module, Any, Any], None],
) -> Iterator[None]:
    """Attach a forward hook to each (name, module); always remove them on exit."""
    handles = []
    try:
        for name, mod in modules:
            handles.append(mod.register_forward_hook(lambda m, i, o, _n=name: fn(_n, m, i, o)))
        yield
    finally:
        for h in handles:
            h.remove()


def params_and_buffers(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Detached parameter values and *copies* of buffers, for torch.func.functional_call."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    return params, buffers
