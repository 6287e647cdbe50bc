"""The normalization registry: what each arm's `norm` builds and what it can do.

Capabilities replace `has_bn`-style checks elsewhere: analyses ask `norm_info(arm.norm)` whether a
normalization has running statistics, γ/β, per-batch statistics, or BN's Jacobian closed form.
torch is imported only when a layer is built, so the spec can use this registry cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NormInfo:
    """One normalization kind and its capability flags."""

    name: str
    label: str
    normalizes: bool  # False only for "none": the arm is a baseline candidate
    running_stats: bool  # keeps running statistics (eval mode differs from train mode)
    affine: bool  # can have learnable γ/β (the arm's `affine` switches them)
    per_batch: bool  # statistics across the batch (needs m >= 2; the output depends on the batch)
    jacobian_closed_form: bool  # C5: Santurkar Thm 4.1's closed form applies
    builder: Callable[[Any, int, bool], Any] | None = None  # (arm, width, conv) -> nn.Module


def _batch(arm: Any, width: int, conv: bool) -> Any:
    from torch import nn

    cls = nn.BatchNorm2d if conv else nn.BatchNorm1d
    return cls(width, eps=arm.eps, momentum=arm.momentum, affine=arm.affine)


NORMS: dict[str, NormInfo] = {
    "none": NormInfo("none", "no normalization", False, False, False, False, False, None),
    "batch": NormInfo("batch", "BatchNorm (Ioffe & Szegedy 2015)", True, True, True, True, True, _batch),
}


def norm_names() -> list[str]:
    return list(NORMS)


def norm_info(name: str) -> NormInfo:
    try:
        return NORMS[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; known: {', '.join(NORMS)}") from None


def build_norm(arm: Any, width: int, conv: bool) -> Any:
    """The arm's normalization module for a layer of `width` units (an Identity for 'none')."""
    from torch import nn

    info = norm_info(arm.norm)
    if info.builder is None:
        return nn.Identity()
    return info.builder(arm, width, conv)
