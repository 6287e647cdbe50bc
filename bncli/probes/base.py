"""Shared probe machinery: the schedule, `measuring` (a probe changes nothing), and the small
helpers every analysis uses (unit views, finite means, the claim-pair loop)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from bncli.runtime import preserved_rng
from bncli.stats import finite_max, finite_mean, spread_indices, worst_max  # noqa: F401  (re-exported)


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


def buffer_copies(buffers: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached copies of buffers: BN in training mode writes its running statistics into them."""
    return {k: v.detach().clone() for k, v in buffers.items()}


def stacked_buffer_copies(buffers: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """k stacked copies of each buffer (a leading batch dim), one per vmapped point or mix."""
    return {n: v.detach().unsqueeze(0).expand(k, *v.shape).clone() for n, v in buffers.items()}


def params_and_buffers(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Detached parameter values and *copies* of buffers, for torch.func.functional_call."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    return params, buffer_copies(dict(model.named_buffers()))


def as_units(a: torch.Tensor) -> torch.Tensor:
    """(B, C) or (B, C, H, W) -> (N, C), one column per unit: conv maps count height x width as
    samples of a channel, as BN does. Transpose it for one row per unit."""
    if a.dim() == 2:
        return a
    return a.movedim(1, -1).reshape(-1, a.shape[1])


def norm64(t: torch.Tensor) -> float:
    """‖t‖₂ over all entries, in float64."""
    return float(t.double().norm())


def cos64(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos(a, b) over all entries in float64; NaN when either is zero."""
    a64, b64 = a.double().flatten(), b.double().flatten()
    na, nb = float(a64.norm()), float(b64.norm())
    if na == 0 or nb == 0:
        return math.nan
    return float(a64 @ b64) / (na * nb)
