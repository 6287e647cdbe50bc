"""Spec models of each analysis subcommand's settings (the `analysis:` section of a spec)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic.fields import FieldInfo

from bncli.registry import Registry
from bncli.spec_types import (
    MAX_LIST,
    BatchSize,
    Count,
    Float,
    Fraction,
    Int,
    NoRepeats,
    PositiveFloat,
    Strict,
    Width,
)


class IcsSpec(Strict):
    """measure-ics (C2, C3)."""

    every: Count = Field(50, description="measure every N steps")
    layers: Annotated[list[str], NoRepeats(), Field(min_length=1)] | None = Field(
        None, description="normalization points to measure, e.g. [layer1, layer3] (null: every one)")
    tracked_units: Width = Field(3, description="units per layer whose 15/50/85th percentiles are tracked")
    probe_size: BatchSize = Field(256, description="examples in the fixed probe batch (at most the "
                                  "training examples)")
    gradient_ics: bool = Field(True, description="also Santurkar's gradient ICS ‖G − G′‖, cos(G, G′) (C3)")


class SurfaceSpec(Strict):
    """lipschitz.surface: the filter-normalized loss surface (Li et al. 2018), shown beside C4."""

    dims: Literal[1, 2] = Field(2, description="1: a curve along one random direction; 2: a plane of two")
    points: Annotated[Int, Field(ge=3, le=201)] = Field(21, description="grid points per direction")
    span: PositiveFloat = Field(1.0, description="the grid covers [−span, span] in units of the "
                                "filter-normalized direction")
    directions_seed: Int = Field(0, description="mixed with the run's seed: the same directions for "
                                 "every arm of a seed (each scaled to its own weights' filters)")
    probe_size: BatchSize = Field(256, description="examples the surface is evaluated on (the first "
                                  "training examples: the same for every arm)")
    at_init: bool = Field(False, description="also at the initial weights (step 0)")
    interpolate: bool = Field(False, description="also the loss on the line θ₀ + t(θ_end − θ₀) from the "
                              "initial to the final weights, t over [−0.5, 1.5] (points values)")


# the lipschitz fields that are off by default and, while off, leave a run's job key as it was
# (bncli.plan.job_spec drops them): default runs stay what they were
LIPSCHITZ_OPT_IN = {"surface": None, "hessian_trace": False, "hessian_top_k": 3, "hessian_density": False,
                    "density_runs": 3, "density_steps": 80, "hessian_trace_tol": 0.05, "hessian_trace_max": 200}


class LipschitzSpec(Strict):
    """lipschitz (C4, C5)."""

    every: Count = Field(100, description="measure every N steps")
    eta_range: tuple[PositiveFloat, PositiveFloat] = Field(
        (0.5, 4.0), description="[low, high] with low < high: the η′ grid of step lengths, in multiples "
        "of the lr")
    eta_points: Annotated[Int, Field(ge=2, le=10_000)] = Field(8, description="points on the η′ grid")
    hessian: bool = Field(False, description="also the extreme Hessian eigenvalues λ_max, λ_min (Lanczos)")
    hessian_iters: Count = Field(100, description="Hessian-vector products per eigenvalue (Lanczos), "
                                 "at most")
    hessian_tol: PositiveFloat = Field(1e-3, description="converged when ‖Hv − λv‖ ≤ tol·|λ|")
    hessian_trace: bool = Field(False, description="also the Hessian's trace (Hutchinson, Rademacher "
                                "vectors) and its top-k eigenvalues, on the measurement steps (shown, not judged)")
    hessian_top_k: Annotated[Int, Field(ge=0, le=20)] = Field(
        3, description="top eigenvalues with the trace or density (Lanczos; 0: none)")
    hessian_trace_tol: PositiveFloat = Field(0.05, description="Hutchinson stops when the running mean's "
                                             "standard error ≤ tol·|mean|")
    hessian_trace_max: Count = Field(200, description="Hutchinson samples (HVPs) per measurement, at most")
    hessian_density: bool = Field(False, description="also the Hessian's eigenvalue density (stochastic "
                                  "Lanczos quadrature, Gaussian-broadened) on the measurement steps")
    density_runs: Annotated[Int, Field(ge=1, le=50)] = Field(3, description="SLQ runs averaged")
    density_steps: Annotated[Int, Field(ge=2, le=1000)] = Field(80, description="Lanczos steps per SLQ run")
    surface: SurfaceSpec | None = Field(None, description="the filter-normalized loss surface at the end "
                                        "of training (null: none)")
    bn_mode: Literal["train", "eval"] = Field(
        "train", description="train: batch statistics (what SGD optimizes); eval: running statistics")
    eta_spacing: Literal["linear", "log"] = Field(
        "linear", description="linear reproduces Santurkar's grid; log suits wide ranges like the "
        "deep linear net's")
    batched: bool = Field(True, description="the η′ grid as one vmap'ed computation; false: point by "
                          "point (same numbers)")
    jacobian: bool = Field(True, description="C5: BN's Jacobian / backward pass against their closed "
                           "forms on the run's BN layers")
    jacobian_units: Width = Field(8, description="units (channels) per layer whose full Jacobian is formed")
    jacobian_rows: BatchSize = Field(256, description="rows of each unit's m x m Jacobian (all when m "
                                     "is smaller)")
    jacobian_tol: PositiveFloat = Field(1e-4, description="max relative error for C5 to be supported")

    @field_validator("eta_range")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] >= v[1]:
            raise ValueError("eta_range must be (low, high) with low < high")
        return v


class ScaleSpec(Strict):
    """scale-check (C6)."""

    every: Count = Field(50, description="record weight norms every N steps")
    alphas: Annotated[list[PositiveFloat], NoRepeats()] = Field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1e1, 1e2, 1e3], min_length=1, max_length=MAX_LIST,
        description="the scales α in W_i ← α·W_i"
    )
    probe_size: BatchSize = Field(256, description="examples in the fixed probe batch")
    layers: Annotated[list[str], NoRepeats(), Field(min_length=1)] | None = Field(
        None, description="layers to scale (null: every layer whose weight feeds a normalization point)")
    tolerance: PositiveFloat = Field(
        1e-5, description="a relative output change below this counts as invariant (float32 roundoff "
        "is ~1e-7)")
    grad_tolerance: PositiveFloat = Field(0.01, description="allowed |α·ratio − 1| for the 1/α gradient law")
    verdict_alpha_range: tuple[PositiveFloat, PositiveFloat] = Field(
        (0.01, 100.0), description="[low, high] with low <= high: the verdict uses the α inside it; "
        "outside it BN's ε dominates (shown, not judged)")
    explode_factor: Annotated[Float, Field(gt=1.0)] = Field(
        10.0, description="‖W_end‖/‖W_0‖ above this: the weights exploded")
    not_invariant_above: PositiveFloat = Field(
        1e-3, description="a BN arm whose output still moves by more than this with ε → 0 is not "
        "scale-invariant: C6 refuted for it")

    @field_validator("verdict_alpha_range")
    @classmethod
    def _range_ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] > v[1]:
            raise ValueError("verdict_alpha_range must be (low, high) with low <= high")
        return v


class SaturationSpec(Strict):
    """saturation (C7, C8)."""

    every: Count = Field(50, description="measure every N steps")
    threshold: Fraction = Field(
        0.05, description="sigmoid/tanh: a unit is saturated when f′(x) < threshold × max f′")
    probe_size: BatchSize = Field(256, description="examples in the fixed probe batch")
    linear_bound: PositiveFloat = Field(
        2.0, description="the share of pre-activations with |x| ≤ this (Ioffe: ~95% within 2)")


class AnalysisSpec(Strict):
    """Each analysis subcommand's settings: one field per registered section (SECTIONS)."""


# section name -> (its pydantic model, its help): bncli's own below, a plugin's analysis through
# bncli.analyses.register_analysis(..., section_model=...); AnalysisSpec's fields follow it
SECTIONS: Registry[tuple[type[BaseModel], str]] = Registry("analysis section")


def register_section(name: str, model: type[BaseModel], help: str = "", *, replace: bool = False) -> None:
    SECTIONS.register(name, (model, help), replace=replace)


def _sync_sections() -> None:
    """AnalysisSpec's fields := the registered sections (the spec listens and rebuilds Spec)."""
    fields = AnalysisSpec.model_fields
    for name in [n for n in fields if n not in SECTIONS]:
        del fields[name]
    for name, (model, help) in SECTIONS.items():
        fields[name] = FieldInfo.from_annotated_attribute(model, Field(default_factory=model, description=help))
    AnalysisSpec.model_rebuild(force=True)


SECTIONS.on_change(_sync_sections)
for _name, _model, _help in (("ics", IcsSpec, "measure-ics (C2, C3)"),
                             ("lipschitz", LipschitzSpec, "lipschitz (C4, C5)"),
                             ("scale", ScaleSpec, "scale-check (C6)"),
                             ("saturation", SaturationSpec, "saturation (C7, C8)")):
    register_section(_name, _model, _help)
