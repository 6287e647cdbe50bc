"""Saturation, dead units, per-layer gradient norms (C7) and what BN's γ/β do (C8)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from bncli.norms import norm_info
from bncli.probes.base import ProbeBase, as_units, forward_hooks, measuring, params_and_buffers
from bncli.train import RunContext, StepContext

# max of the activation's derivative: σ'(0) = 1/4, tanh'(0) = 1
_DERIV_MAX = {"sigmoid": 0.25, "tanh": 1.0}


def activation_derivative(z: torch.Tensor, activation: str) -> torch.Tensor:
    """σ'(z) = σ(z)(1 − σ(z)) or tanh'(z) = 1 − tanh(z)²."""
    if activation == "sigmoid":
        s = torch.sigmoid(z)
        return s * (1 - s)
    if activation == "tanh":
        return 1 - torch.tanh(z) ** 2
    raise ValueError(f"no saturation for activation {activation!r}")


def preact_stats(
    z: torch.Tensor, activation: str, threshold: float, bound: float = 2.0
) -> dict[str, torch.Tensor]:
    """Scalar tensors for one layer's pre-activations z (batch first, units on dim 1).

    linear: fraction of values with |z| <= bound. saturated (sigmoid/tanh): fraction of values
    (example, unit) whose derivative is below threshold × its maximum. active (relu): fraction of
    values > 0. dead (relu): fraction of units that are <= 0 on every example of the batch.
    """
    v = as_units(z.detach())
    out = {"linear": (v.abs() <= bound).float().mean()}
    if activation in _DERIV_MAX:
        d = activation_derivative(v, activation)
        out["saturated"] = (d < threshold * _DERIV_MAX[activation]).float().mean()
    elif activation == "relu":
        pos = v > 0
        out["active"] = pos.float().mean()
        out["dead"] = (~pos.any(dim=0)).float().mean()
    return out


def affine_stats(gamma: torch.Tensor, beta: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Mean and spread of γ and β, and the share of units with β > 0 (any normalization's γ/β;
    a normalization with γ only, such as RMSNorm, gives γ's)."""
    g = gamma.detach().flatten()
    if beta is None:
        return {"gamma_mean": g.mean(), "gamma_std": g.std(unbiased=False)}
    b = beta.detach().flatten()
    return {
        "beta_mean": b.mean(),
        "beta_std": b.std(unbiased=False),
        "beta_pos": (b > 0).float().mean(),
        "gamma_mean": g.mean(),
        "gamma_std": g.std(unbiased=False),
    }


def identity_recovery(
    bn_input: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float
) -> dict[str, torch.Tensor]:
    """How far (γ, β) are from the point (σ, μ) of BN's input where BN computes the identity.

    σ_j = sqrt(biased batch variance + eps) and μ_j = batch mean, per unit, as BN itself uses;
    distance = ‖(γ − σ, β − μ)‖₂ / ‖(σ, μ)‖₂ (relative, so layers of any scale compare).
    """
    v = as_units(bn_input.detach())
    mu = v.mean(0)
    sigma = torch.sqrt(v.var(0, unbiased=False) + eps)
    g, b = gamma.detach(), beta.detach()
    num = torch.sqrt(((g - sigma) ** 2).sum() + ((b - mu) ** 2).sum())
    den = torch.sqrt((sigma**2).sum() + (mu**2).sum())
    return {"id_dist": num / den, **affine_stats(g, b)}


class SaturationProbe(ProbeBase):
    """Per due step: pre-activation statistics on the probe batch, ‖∇W_i‖, and γ/β of the
    normalization layers (with BN's identity-recovery distance on BN layers)."""

    name = "saturation"

    def __init__(
        self, every: int, probe_x: torch.Tensor, activation: str, threshold: float, bound: float
    ) -> None:
        super().__init__(every)
        self.probe_x = probe_x
        self.activation = activation
        self.threshold = threshold
        self.bound = bound
        self.layers: list[str] = []
        self._weights: dict[str, nn.Parameter] = {}
        self.affine = False
        self.has_bn = False
        self.steps: list[int] = []
        # per layer, per metric: one scalar tensor per measurement (converted to floats at the end)
        self._rows: list[dict[str, dict[str, torch.Tensor]]] = []

    def on_start(self, run: RunContext) -> None:
        model = run.model
        self.layers = list(model.point_names)
        self._weights = {n: model.get_parameter(q) for n, q in model.weight_param_names().items()}
        blocks = [model.block(n) for n in self.layers]
        self.has_bn = any(b.normalized for b in blocks)
        self.affine = self.has_bn and all(
            getattr(b.norm, "weight", None) is not None for b in blocks if b.normalized
        )

    def before_update(self, ctx: StepContext) -> None:
        model = ctx.run.model
        captured: dict[str, dict[str, torch.Tensor]] = {n: {} for n in self.layers}
        bn_inputs: dict[str, torch.Tensor] = {}

        def on_preact(name: str, _m: nn.Module, _i: Any, out: torch.Tensor) -> None:
            captured[name].update(preact_stats(out, self.activation, self.threshold, self.bound))

        def on_bn_in(name: str, _m: nn.Module, _i: Any, out: torch.Tensor) -> None:
            bn_inputs[name] = out.detach()

        taps = [(n, model.block(n).preact) for n in self.layers]
        bn_taps = [(n, model.block(n).bn_in) for n in self.layers if model.block(n).normalized]
        # buffer copies keep running statistics put; `measuring` is the safety net for the rest
        with measuring(model, ctx.run.device), torch.no_grad():
            params, buffers = params_and_buffers(model)
            with forward_hooks(taps, on_preact), forward_hooks(bn_taps, on_bn_in):
                functional_call(model, {**params, **buffers}, (self.probe_x,))
            for n in self.layers:
                g = self._weights[n].grad  # ∇W_i L on this step's batch, read only
                captured[n]["grad_norm"] = (
                    torch.linalg.vector_norm(g) if g is not None else torch.tensor(math.nan)
                )
                norm = model.block(n).norm
                if n in bn_inputs and getattr(norm, "weight", None) is not None:
                    if norm_info(model.block(n).norm_kind).identity_point:
                        captured[n].update(
                            identity_recovery(bn_inputs[n], norm.weight, norm.bias, norm.eps)
                        )
                    else:  # (σ, μ) of the batch is BN's identity point only; γ/β all the same
                        captured[n].update(affine_stats(norm.weight, getattr(norm, "bias", None)))
        self.steps.append(ctx.step)
        self._rows.append(captured)

    def on_end(self, run: RunContext) -> None:
        self._weights = {}  # drop the parameter references: results hold plain data only

    def result(self) -> dict[str, Any]:
        metrics = sorted({k for row in self._rows for d in row.values() for k in d})
        per_layer: dict[str, dict[str, list[float]]] = {}
        for n in self.layers:
            per_layer[n] = {}
            for k in metrics:
                vals = [row[n].get(k) for row in self._rows]
                if all(v is None for v in vals):
                    continue
                flat = torch.stack(
                    [v.float().cpu() if v is not None else torch.tensor(math.nan) for v in vals]
                )
                per_layer[n][k] = flat.tolist()
        grads = [per_layer[n].get("grad_norm", []) for n in self.layers]
        ratio = (
            [_ratio(first, last) for first, last in zip(grads[0], grads[-1], strict=True)]
            if grads
            else []
        )
        return {
            "activation": self.activation,
            "threshold": self.threshold,
            "bound": self.bound,
            "probe_size": int(self.probe_x.shape[0]),
            "has_bn": self.has_bn,
            "affine": self.affine,
            "steps": list(self.steps),
            "layers": list(self.layers),
            "per_layer": per_layer,
            "grad_ratio": ratio,
        }


def _ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan
    return a / b


def make_probe(spec: Any, arm: Any, lr: float, seed: int, data: Any) -> SaturationProbe:
    """The C7/C8 saturation probe on a fixed probe batch (registry: saturation)."""
    cfg = spec.analysis.saturation
    x, _y = data.probe_batch(cfg.probe_size)
    return SaturationProbe(cfg.every, x, spec.model.activation, cfg.threshold, cfg.linear_bound)
