"""The normalization registry: what each arm's `norm` builds and what it can do.

Capabilities replace `has_bn`-style checks elsewhere: analyses ask `norm_info(arm.norm)` whether a
normalization has running statistics, γ/β, per-batch statistics, or BN's Jacobian closed form.
torch is imported only when a layer is built, so the spec can use this registry cheaply.

What each builds at a normalization point of `width` units (channels on a CNN):
- batch: nn.BatchNorm1d / nn.BatchNorm2d (per unit over the batch; conv: over batch x H x W).
- layer: Ba et al. 2016, per example over all of the layer's units. MLP: nn.LayerNorm(width).
  CNN: nn.GroupNorm(1, C), i.e. per example over (C, H, W) with per-channel γ, β: LayerNorm for
  conv maps as Wu & He 2018 define it (GN with one group), not nn.LayerNorm([C, H, W]) with a
  γ per position.
- group: Wu & He 2018, nn.GroupNorm(groups, width): per example over each group of width/groups
  units (conv: channels x H x W). The MLP form needs >= 2 units per group.
- weight: Salimans & Kingma 2016, torch.nn.utils.parametrizations.weight_norm on the layer's
  Linear/Conv weight: W = g·v/‖v‖ per output unit. No module after the weight (Block.norm stays an
  Identity); the trainable W_i the probes see is the direction v.
- lp: Santurkar et al. 2018 §3.3, bncli.norm_layers.LpNorm (p = 1, 2 or inf; lp_scope layer or
  unit: the paper's two readings).
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
    # (arm, weight module) -> None: reparametrizes the Linear/Conv weight in place (weight norm)
    reparametrize: Callable[[Any, Any], None] | None = None

    @property
    def short(self) -> str:
        """What notes call it: BN, LN, GN, WN, ℓp (or "no normalization")."""
        return _SHORT.get(self.name, self.name)


def _batch(arm: Any, width: int, conv: bool) -> Any:
    from torch import nn

    cls = nn.BatchNorm2d if conv else nn.BatchNorm1d
    return cls(width, eps=arm.eps, momentum=arm.momentum, affine=arm.affine)


def _layer(arm: Any, width: int, conv: bool) -> Any:
    from torch import nn

    if conv:  # per example over (C, H, W), per-channel γ/β (Wu & He 2018: LN = GN with G = 1)
        return nn.GroupNorm(1, width, eps=arm.eps, affine=arm.affine)
    return nn.LayerNorm(width, eps=arm.eps, elementwise_affine=arm.affine)


def group_problem(groups: int, width: int, conv: bool) -> str | None:
    """Why `groups` cannot split a layer of `width` units (None when it can)."""
    if width % groups:
        return f"{groups} does not divide the layer's {width} {'channels' if conv else 'units'}"
    if not conv and width // groups < 2:
        return (f"{groups} groups of a {width}-unit layer leave one unit per group, whose "
                "normalized value is always 0; use at most width/2 groups")
    return None


def arm_width_problem(arm: Any, widths: Any, conv: bool) -> str | None:
    """Why an arm cannot normalize layers of these widths (None when it can): for a spec-level
    check before any training, naming `arms.N.groups`. Only GroupNorm constrains widths."""
    if arm.norm != "group":
        return None
    for i, width in enumerate(widths):
        problem = group_problem(arm.groups, width, conv)
        if problem is not None:
            return f"{problem} (layer{i + 1})"
    return None


def _group(arm: Any, width: int, conv: bool) -> Any:
    from torch import nn

    problem = group_problem(arm.groups, width, conv)
    if problem is not None:
        from bncli.errors import SpecError

        raise SpecError(f"arms ({arm.name}).groups: {problem}")
    return nn.GroupNorm(arm.groups, width, eps=arm.eps, affine=arm.affine)


def _lp(arm: Any, width: int, conv: bool) -> Any:
    from bncli.norm_layers import LpNorm

    return LpNorm(width, p=arm.p_value, eps=arm.eps, momentum=arm.momentum, affine=arm.affine,
                  scope=arm.lp_scope)


def _weight_norm(arm: Any, module: Any) -> None:
    import warnings

    from torch.nn.utils.parametrizations import weight_norm

    # torch.func.vmap has no batching rule for weight norm's kernel and falls back to a loop
    # (same numbers, slower), warning each time; the probes' vmapped passes would repeat it
    warnings.filterwarnings(
        "ignore", message=r"There is a performance drop because we have not yet implemented "
        r"the batching rule for aten::_weight_norm")
    weight_norm(module, name="weight", dim=0)


NORMS: dict[str, NormInfo] = {
    "none": NormInfo("none", "no normalization", False, False, False, False, False, None),
    "batch": NormInfo("batch", "BatchNorm (Ioffe & Szegedy 2015)", True, True, True, True, True, _batch),
    "layer": NormInfo("layer", "LayerNorm (Ba et al. 2016)", True, False, True, False, False, _layer),
    "group": NormInfo("group", "GroupNorm (Wu & He 2018)", True, False, True, False, False, _group),
    "weight": NormInfo("weight", "weight normalization (Salimans & Kingma 2016)", True, False,
                       False, False, False, None, _weight_norm),
    "lp": NormInfo("lp", "ℓp normalization (Santurkar et al. 2018 §3.3)", True, True, True, True,
                   False, _lp),
}
_SHORT = {"none": "no normalization", "batch": "BN", "layer": "LN", "group": "GN", "weight": "WN",
          "lp": "ℓp"}


def norm_names() -> list[str]:
    return list(NORMS)


def norm_info(name: str) -> NormInfo:
    try:
        return NORMS[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; known: {', '.join(NORMS)}") from None


def build_norm(arm: Any, width: int, conv: bool) -> Any:
    """The arm's normalization module for a layer of `width` units (an Identity for 'none' and
    'weight': weight norm lives in the weight module, see reparametrize_weight)."""
    from torch import nn

    info = norm_info(arm.norm)
    if info.builder is None:
        return nn.Identity()
    return info.builder(arm, width, conv)


def reparametrize_weight(arm: Any, module: Any) -> bool:
    """Apply the arm's weight reparametrization (weight norm) to a Linear/Conv module in place;
    True when there was one. Call it after the weight's initialization."""
    info = norm_info(arm.norm)
    if info.reparametrize is None:
        return False
    info.reparametrize(arm, module)
    return True
