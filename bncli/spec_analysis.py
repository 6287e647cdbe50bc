"""Spec models of each analysis subcommand's settings (the `analysis:` section of a spec)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from bncli.spec_types import (
    MAX_LIST,
    BatchSize,
    Count,
    Float,
    Fraction,
    Int,
    PositiveFloat,
    Strict,
    Width,
)


class IcsSpec(Strict):
    """measure-ics (C2, C3)."""

    every: Count = 50
    layers: list[str] | None = None  # None: every normalization point
    tracked_units: Width = 3
    probe_size: BatchSize = 256
    gradient_ics: bool = True


class LipschitzSpec(Strict):
    """lipschitz (C4, C5)."""

    every: Count = 100
    eta_range: tuple[PositiveFloat, PositiveFloat] = (0.5, 4.0)
    eta_points: Annotated[Int, Field(ge=2, le=10_000)] = 8
    hessian: bool = False
    hessian_iters: Count = 100  # Hessian-vector products per eigenvalue (Lanczos), at most
    hessian_tol: PositiveFloat = 1e-3  # converged when ‖Hv − λv‖ ≤ tol·|λ|
    bn_mode: Literal["train", "eval"] = "train"
    # linear spacing reproduces Santurkar's grid; log suits wide ranges like the deep linear net's
    eta_spacing: Literal["linear", "log"] = "linear"
    # the eta' grid as one vmap'ed computation; false evaluates it point by point (same numbers)
    batched: bool = True
    # C5: closed forms of BN's Jacobian / backward pass against autograd on the run's BN layers
    jacobian: bool = True
    jacobian_units: Width = 8  # units (channels) per layer whose full Jacobian is formed
    jacobian_rows: BatchSize = 256  # rows of each unit's m x m Jacobian (all when m is smaller)
    jacobian_tol: PositiveFloat = 1e-4  # max relative error for C5 to be supported

    @field_validator("eta_range")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] >= v[1]:
            raise ValueError("eta_range must be (low, high) with low < high")
        return v


class ScaleSpec(Strict):
    """scale-check (C6)."""

    every: Count = 50
    alphas: list[PositiveFloat] = Field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1e1, 1e2, 1e3], max_length=MAX_LIST
    )
    probe_size: BatchSize = 256
    layers: list[str] | None = None  # None: every layer whose weight feeds a normalization point
    # a relative output change below this counts as invariant (float32 roundoff is ~1e-7)
    tolerance: PositiveFloat = 1e-5
    grad_tolerance: PositiveFloat = 0.01  # allowed |alpha * ratio - 1| for the 1/alpha law
    # the verdict uses the alphas inside this range (SCIENCE.md C6: 0.01...100); outside it BN's
    # eps dominates and the numbers are shown, not judged
    verdict_alpha_range: tuple[PositiveFloat, PositiveFloat] = (0.01, 100.0)
    explode_factor: Annotated[Float, Field(gt=1.0)] = 10.0  # ||W_end||/||W_0|| above: exploded
    # a BN arm whose output still moves by more than this with eps -> 0 is not scale-invariant:
    # the C6 verdict for it is `refuted` (far above float32 roundoff, ~1e-6)
    not_invariant_above: PositiveFloat = 1e-3

    @field_validator("alphas")
    @classmethod
    def _alphas_nonempty(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("give at least one alpha")
        return v

    @field_validator("verdict_alpha_range")
    @classmethod
    def _range_ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] > v[1]:
            raise ValueError("verdict_alpha_range must be (low, high) with low <= high")
        return v


class SaturationSpec(Strict):
    """saturation (C7, C8)."""

    every: Count = 50
    threshold: Fraction = 0.05  # saturated: derivative < threshold x its maximum (sigmoid/tanh)
    probe_size: BatchSize = 256
    linear_bound: PositiveFloat = 2.0  # the notes' "~95% of pre-activations within |x| <= 2"


class AnalysisSpec(Strict):
    ics: IcsSpec = Field(default_factory=IcsSpec)
    lipschitz: LipschitzSpec = Field(default_factory=LipschitzSpec)
    scale: ScaleSpec = Field(default_factory=ScaleSpec)
    saturation: SaturationSpec = Field(default_factory=SaturationSpec)
