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
from dataclasses import dataclass, field
from typing import Any

from bncli.registry import Registry

ArmNote = Callable[[Any], list[str]]  # (arm) -> note lines


@dataclass(frozen=True)
class NormInfo:
    """One normalization kind: how it is built and every fact the spec, the planner and the
    analyses need about it (no norm-keyed dict or if/elif elsewhere)."""

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
    abbrev: str = ""  # what tables and notes call it: BN, LN, GN, WN, ℓp (default: the name)
    prose: str = ""  # what sentences call it ("weight norm"; default: abbrev)
    invariance: str = ""  # a reparametrized weight (weight norm): why scaling it changes nothing (C6)
    bias_note: str = ""  # why a bias survives it, e.g. "per example over each group" (C6)
    over: str = ""  # what it normalizes over, in words ("the layer's units"; notes and README)
    per_example: bool = False  # statistics per example across units (LN, GN): a bias need not cancel
    has_beta: bool | None = None  # with affine on, a β (shift) too; None: as `affine`
    bias_cancels: bool = False  # subtracts a per-unit batch mean, so a per-unit bias cancels (C6)
    has_eps: bool = True  # an ε in the denominator (C6's ε → 0 check)
    eps_enters: str = "its denominator"  # where ε enters, in words (C6's ε note)
    identity_point: bool = False  # (γ, β) = (σ, μ) of the batch makes it the identity (C8's note)
    eps_closed_form: bool = False  # ε's effect has a closed form from the per-unit batch variance (C6)
    reference: bool = False  # the normalization the claims are about (BN): texts say "BN", C9's BN arm
    # the bncli.runner fused forms it can train in: "stacked" (StackedMLP), "vmap" (torch.func)
    fuses: tuple[str, ...] = ()
    arm_fields: tuple[str, ...] = ()  # ArmSpec fields only this norm reads (idle elsewhere: an error)
    variant_fields: tuple[str, ...] = ()  # arm fields that make another normalization (C8's ablation pairs)
    c9_role: str | None = None  # "judged" or "reported" by C9 (Santurkar §3.3's comparison)
    # (arm, widths, conv) -> why it cannot normalize layers of these widths, or None
    width_problem: Callable[[Any, Any, bool], str | None] | None = None
    width_field: str = "norm"  # the arm field a width problem names (group: groups)
    ics_note: ArmNote | None = None  # what it fixes by construction at the nonlinearity's input (C2)
    scope_note: Callable[[Any], str] | None = None  # which reading of it an arm is (C9's note)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm preset -> its overrides
    doc: str = ""  # what it normalizes, in README's words (its table is generated from here)

    @property
    def short(self) -> str:
        """What notes call it: BN, LN, GN, WN, ℓp (or "no normalization")."""
        return self.abbrev or self.name

    @property
    def in_prose(self) -> str:
        return self.prose or self.short

    @property
    def beta(self) -> bool:
        """With γ/β on, whether there is a β."""
        return self.affine if self.has_beta is None else self.has_beta


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
    check before any training. The norm's entry says (`width_problem`)."""
    check = norm_info(arm.norm).width_problem
    return None if check is None else check(arm, widths, conv)


def _group_widths(arm: Any, widths: Any, conv: bool) -> str | None:
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


# ---------------------------------------------------------------- C2's notes: what each fixes


def _extras(a: Any) -> tuple[str, str]:
    noise = " (before Santurkar's noise, which then moves it)" if a.noisy else ""
    return noise, (" before γ, β" if a.has_affine else "")


def _bn_note(a: Any) -> list[str]:
    mean, var = ("β", "≈ γ² (γ²σ²/(σ² + ε))") if a.affine else ("0", "≈ 1 (σ²/(σ² + ε))")
    if a.noisy:
        return [f"on {a.name} the nonlinearity's input is BN's output after Santurkar's noise "
                "(a ← s·a + m, redrawn every step): BN alone would fix its per-unit mean at "
                f"{mean} and its variance {var}; the shifts measured here are the noise's"]
    return [f"on {a.name} the nonlinearity's input is BN's output: in training mode its per-unit mean "
            f"is exactly {mean} and its variance {var} on any batch, by construction, "
            "so |Δμ| and |Δσ²| there follow γ and β only; W1 and the percentiles also see changes in shape"]


def per_example_note(a: Any) -> list[str]:
    """The C2 note of a normalization over each example's units (LN, GN; a plugin's RMSNorm)."""
    noise, affine = _extras(a)
    info = a.norm_info
    return [f"on {a.name} ({info.short}) each example's mean and variance across {info.over} are 0 "
            f"and ≈ 1{affine}{noise}, by construction; no unit's distribution over the batch is "
            "fixed, so per-unit |Δμ|, |Δσ²|, W1 and percentiles all move freely"]


def _weight_note(a: Any) -> list[str]:
    return [f"on {a.name} (weight norm) nothing about the activations is fixed by construction: "
            "it normalizes each unit's weight vector, not its input"]


def _lp_note(a: Any) -> list[str]:
    noise, _ = _extras(a)
    if a.lp_scope == "unit":
        mean, var = ("β", "fixed (γ² for ℓ2)") if a.has_affine else ("0", "fixed (1 for ℓ2)")
        return [f"on {a.name} (ℓp normalization, per-unit reading) each unit's batch mean is {mean} and "
                f"its ℓp magnitude over the batch is {var} by construction{noise}; W1 and the "
                "percentiles also see changes in shape"]
    mean = "β" if a.has_affine else "0"
    return [f"on {a.name} (ℓp normalization) each unit's batch mean is {mean} by construction"
            f"{noise}, as with BN, but no unit's variance is fixed: one scalar per layer and batch "
            "(the mean ℓp magnitude) divides every unit, so |Δσ²|, W1 and the percentiles all "
            "move freely"]


def _lp_scope(a: Any) -> str:
    if a.lp_scope == "unit":
        return f"{a.name}: ℓp reading `unit` (one scale per unit, Hoffer et al.'s L1 BN reading)"
    return f"{a.name}: ℓp reading `layer` (one scale per layer and batch)"


def _lp_presets() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for scope in ("", "_unit"):
        for word, p in (("l1", 1), ("l2", 2), ("linf", "inf")):
            out[f"{word}norm{scope}"] = {"p": p, **({"lp_scope": "unit"} if scope else {})}
    return out


# ---------------------------------------------------------------- the registry

NORMS: Registry[NormInfo] = Registry("norm")
ARM_PRESETS: dict[str, dict[str, Any]] = {}  # preset name -> arm fields: every entry's presets


def register_norm(info: NormInfo, *, replace: bool = False) -> NormInfo:
    """Add a normalization (bncli's own below; a plugin's the same way): arms accept
    `norm: info.name` and its presets from now on."""
    return NORMS.register(info.name, info, replace=replace)


def _rebuild_presets() -> None:
    ARM_PRESETS.clear()
    for info in NORMS.values():
        for preset, fields in info.presets.items():
            ARM_PRESETS[preset] = {"norm": info.name, **fields}


NORMS.on_change(_rebuild_presets)

for _info in (
    NormInfo("none", "no normalization", False, False, False, False, False, None,
             abbrev="no normalization", fuses=("stacked", "vmap"), doc="nothing",
             presets={"plain": {}, "noisy_plain": {"noise": True}}),
    NormInfo("batch", "BatchNorm (Ioffe & Szegedy 2015)", True, True, True, True, True, _batch,
             abbrev="BN", over="each unit over the batch (conv: batch x H x W)", bias_cancels=True,
             identity_point=True, eps_closed_form=True, reference=True, fuses=("stacked", "vmap"),
             ics_note=_bn_note,
             doc="each unit over the batch (`nn.BatchNorm1d`; `nn.BatchNorm2d`: over batch × H × W)",
             presets={"batchnorm": {}, "noisy_batchnorm": {"noise": True},
                      "batchnorm_noaffine": {"affine": False}, "batchnorm_post": {"position": "post"}}),
    NormInfo("layer", "LayerNorm (Ba et al. 2016)", True, False, True, False, False, _layer,
             abbrev="LN", over="the layer's units", bias_note="per example over the layer's units", eps_enters=
             "each example's variance across units, (x − μ)/√(σ² + ε)", c9_role="reported",
             per_example=True, ics_note=per_example_note, presets={"layernorm": {}},
             doc="each example over the layer's units (`nn.LayerNorm`; `nn.GroupNorm(1, C)`: over C × H × W "
                 "with per-channel γ, β, LN as Wu & He 2018 define it for conv maps)"),
    NormInfo("group", "GroupNorm (Wu & He 2018)", True, False, True, False, False, _group,
             abbrev="GN", over="each group of units", bias_note="per example over each group", eps_enters=
             "each example's variance across units, (x − μ)/√(σ² + ε)", c9_role="reported", per_example=True,
             width_problem=_group_widths, width_field="groups", ics_note=per_example_note, presets={"groupnorm": {}},
             doc="each example over each of `groups` groups of units (`nn.GroupNorm`; default 2 groups, which "
                 "must divide every layer's width; an MLP group needs ≥ 2 units)"),
    NormInfo("weight", "weight normalization (Salimans & Kingma 2016)", True, False, False, False,
             False, None, _weight_norm, abbrev="WN", over="each unit's weight vector, W = g·v/‖v‖",
             prose="weight norm",
             invariance="weight norm, W = g·v/‖v‖: scaling v (the direction) changes nothing; g, b untouched",
             has_eps=False, ics_note=_weight_note, presets={"weightnorm": {}},
             doc="the weights: W = g·v/‖v‖ per output unit (`torch.nn.utils.parametrizations.weight_norm` on "
                 "each hidden Linear/Conv; starts from the shared W: v = W, g = ‖W‖). The probes' W_i is v."),
    NormInfo("lp", "ℓp normalization (Santurkar et al. 2018 §3.3)", True, True, True, True, False, _lp,
             abbrev="ℓp", over="each unit over the batch, divided by a mean ℓp magnitude",
             bias_cancels=True, eps_enters="the layer's mean ℓp magnitude, c/(s + ε)",
             fuses=("stacked",), arm_fields=("lp_scope",), variant_fields=("p",), c9_role="judged",
             ics_note=_lp_note, scope_note=_lp_scope, presets=_lp_presets(),
             doc="Santurkar §3.3 (SCIENCE.md): each unit minus its batch mean, then divided by \"the average of "
                 "their p-norm\" (`p: 1 \\| 2 \\| inf`). `layer`: the whole layer by one scalar, the batch mean "
                 "of ‖c_i‖_p / d^{1/p}; `unit`: each unit by its own ℓp magnitude over the batch, "
                 "((1/m) Σ_j \\|c_jk\\|^p)^{1/p} (ℓ∞: max_j \\|c_jk\\|; ℓ2 is BN). Conv maps count H × W as "
                 "batch, like BN"),
):
    register_norm(_info)


def norm_names() -> list[str]:
    return list(NORMS.names())


def norm_info(name: str) -> NormInfo:
    """The entry of `name` (an UnknownName, both KeyError and ValueError, naming the known ones)."""
    return NORMS.get(name)


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
