"""Shared probe machinery: the schedule, `measuring` (a probe changes nothing), and the small
helpers every analysis uses (unit views, finite means, the claim-pair loop)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import nn

from bncli.results import RunRecord
from bncli.runtime import preserved_rng
from bncli.spec import Spec
from bncli.verdicts import by_arm_lr, comparison_pairs


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


def spread_indices(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n), first and last included (all of them when k >= n)."""
    if k >= n:
        return list(range(n))
    if k <= 1:
        return [0][:k]
    return sorted({round(j * (n - 1) / (k - 1)) for j in range(k)})


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


def _finite(vals: Iterable[float | None]) -> list[float]:
    return [float(v) for v in vals if v is not None and math.isfinite(float(v))]


def finite_mean(vals: Iterable[float | None]) -> float:
    """Mean of the finite values (None, NaN and ±inf left out); NaN when there are none."""
    f = _finite(vals)
    return statistics.fmean(f) if f else math.nan


def finite_max(vals: Iterable[float | None]) -> float:
    """Max of the finite values (None, NaN and ±inf left out); NaN when there are none."""
    f = _finite(vals)
    return max(f) if f else math.nan


def worst_max(vals: Iterable[float | None]) -> float:
    """Max where a non-finite value (NaN or ±inf) counts as +inf: for errors and blow-ups that must
    not be dropped. None is left out; NaN when nothing is left."""
    v = [float(x) for x in vals if x is not None]
    if not v:
        return math.nan
    return math.inf if any(not math.isfinite(x) for x in v) else max(v)


class ClaimGroup(NamedTuple):
    """One comparison of a claim: the learning rate, both arms, their runs and notes so far."""

    lr: float
    arm: str
    base: str
    a: list[RunRecord]
    b: list[RunRecord]
    notes: list[str]


def claim_pairs(
    spec: Spec,
    records: Sequence[RunRecord],
    pairs: Sequence[tuple[str, str]] | None = None,
    drop_diverged: bool = False,
) -> Iterator[ClaimGroup]:
    """Every (lr, arm, baseline) comparison with runs on both sides, in spec order.

    `pairs` defaults to verdicts.comparison_pairs (each BN arm against the plain arm). With
    `drop_diverged` runs that diverged are left out and the notes say which.
    """
    groups = by_arm_lr(records)
    for lr in spec.train.lr:
        for arm, base in comparison_pairs(spec) if pairs is None else pairs:
            a, b = groups.get((arm, lr), []), groups.get((base, lr), [])
            if not a or not b:
                continue
            notes: list[str] = []
            if drop_diverged:
                for name, rs in ((arm, a), (base, b)):
                    bad = [r for r in rs if r.diverged]
                    if bad:
                        at = ", ".join(str(r.diverged_at) for r in bad)
                        notes.append(f"{name} diverged ({len(bad)}/{len(rs)} seeds, step {at}): "
                                     "those runs are left out")
                a = [r for r in a if not r.diverged]
                b = [r for r in b if not r.diverged]
            yield ClaimGroup(lr, arm, base, list(a), list(b), notes)
