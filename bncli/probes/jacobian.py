"""C5: BN's Jacobian (1/sigma)(I - 11^T/m - y^y^T/m) and Santurkar Thm 4.1 on real BN layers."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vjp, vmap

from bncli.probes.base import ProbeBase, as_units, buffer_copies, forward_hooks, measuring
from bncli.runtime import derive_seed
from bncli.spec import LipschitzSpec


def closed_form_jacobian(
    x: torch.Tensor, eps: float, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """(1/sigma)(I - 11^T/m - y^ y^T/m) for one unit's m values x (sigma includes eps); for a
    (U, m) stack of units, the U matrices at once (U, rows, m).

    Only the given rows when `rows` is set (a conv channel's m x m matrix can be 100s of MB).
    """
    m = x.shape[-1]
    mu = x.mean(-1, keepdim=True)
    sigma = torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps)
    yh = (x - mu) / sigma
    idx = torch.arange(m, device=x.device) if rows is None else rows
    r = torch.arange(len(idx), device=x.device)
    # in place on one (.., rows, m) buffer: -y^_i y^_j / m - 1/m, + 1 on the diagonal, / sigma
    jac = yh[..., idx].unsqueeze(-1) * yh.unsqueeze(-2)
    jac.mul_(-1.0 / m).sub_(1.0 / m)
    jac[..., r, idx] += 1.0
    return jac.div_(sigma.unsqueeze(-1))


def _normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    # BN's own kernel in training mode, one unit per row of x (as channels of a (1, U, m) input:
    # statistics over the m values, biased variance; gradients come back with m contiguous)
    flat = x.reshape(1, -1, x.shape[-1])
    return F.batch_norm(flat, None, None, training=True, eps=eps).reshape(x.shape)


def autograd_jacobian(
    x: torch.Tensor, eps: float, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Autograd's Jacobian of BN's normalization of one unit (m values); only `rows` of it when
    given. For a (U, m) stack of units the U Jacobians (U, rows, m) come from one vmapped
    pullback: the units are independent, so the cotangent e_r in every unit gives each unit's
    own row r."""
    m = x.shape[-1]
    idx = torch.arange(m, device=x.device) if rows is None else rows
    _, pullback = vjp(lambda v: _normalize(v, eps), x)
    basis = torch.zeros(len(idx), *x.shape, dtype=x.dtype, device=x.device)
    basis[torch.arange(len(idx)), ..., idx] = 1.0
    jac = vmap(pullback)(basis)[0]  # (rows, [U,] m)
    return jac if x.dim() == 1 else jac.transpose(0, 1)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: entrywise error relative to the largest entry of the reference."""
    scale = float(b.abs().max())
    return float((a - b).abs().max()) / scale if scale > 0 else float((a - b).abs().max())


def _max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """rel_err of each unit's matrix (a, b: (U, rows, m)), the largest over the units.
    Overwrites `a` (a temporary: no copies of these large matrices; max |t| as max(max t, -min t),
    which reads t without writing an |t|)."""
    def max_abs(t: torch.Tensor) -> torch.Tensor:
        return torch.maximum(t.amax(dim=(1, 2)), t.amin(dim=(1, 2)).neg())

    scale = max_abs(b)
    err = max_abs(a.sub_(b))
    return float(torch.where(scale > 0, err / torch.where(scale > 0, scale, 1.0), err).max())


def jacobian_errors(
    x_units: torch.Tensor, eps: float, n_units: int, n_rows: int, gen: torch.Generator
) -> dict[str, float]:
    """Max relative error of autograd's Jacobian against the closed form over sampled units.

    float32: autograd in the run's precision against the closed form in float64 (the acceptance
    figure); float64: both in float64 (the maths alone, no roundoff). The sampled units go
    through both at once (one stacked closed form, one vmapped pullback per precision).
    """
    c, m = x_units.shape
    units = torch.randperm(c, generator=gen)[: min(n_units, c)].tolist()
    rows = None if m <= n_rows else torch.randperm(m, generator=gen)[:n_rows].to(x_units.device)
    xs = x_units[units]
    ref = closed_form_jacobian(xs.double(), eps, rows)
    err32 = _max_rel_err(autograd_jacobian(xs.float(), eps, rows).double(), ref)
    err64 = _max_rel_err(autograd_jacobian(xs.double(), eps, rows), ref)
    return {"jacobian_err_f32": err32, "jacobian_err_f64": err64,
            "units_checked": len(units), "rows_checked": m if rows is None else len(rows), "m": m}


def backward_checks(
    x: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, gamma: torch.Tensor, eps: float
) -> dict[str, float]:
    """Closed-form backward pass, orthogonality and Thm 4.1 for one layer, in float64.

    x, gx, gy: (C, m) BN input, autograd's dL/dx, and g = dL/dy (y the BN output after gamma).
    """
    x, gx, gy, gamma = x.double(), gx.double(), gy.double(), gamma.double().reshape(-1, 1)
    m = x.shape[1]
    mu = x.mean(1, keepdim=True)
    sigma = torch.sqrt(((x - mu) ** 2).mean(1, keepdim=True) + eps)
    yh = (x - mu) / sigma
    # (gamma/sigma)(I - 11^T/m - y^y^T/m) g, one unit per row
    closed = gamma / sigma * (gy - gy.mean(1, keepdim=True) - yh * (gy * yh).mean(1, keepdim=True))
    gnorm = gx.norm(dim=1)
    live = gnorm > 1e-30
    ones = torch.ones_like(x)
    cos1 = (gx * ones).sum(1).abs() / (gnorm * math.sqrt(m)).clamp_min(1e-300)
    cosy = (gx * yh).sum(1).abs() / (gnorm * yh.norm(dim=1)).clamp_min(1e-300)
    lhs = (gx**2).sum(1)
    rhs = (gamma.reshape(-1) ** 2 / sigma.reshape(-1) ** 2) * (
        (gy**2).sum(1) - gy.sum(1) ** 2 / m - (gy * yh).sum(1) ** 2 / m
    )
    gap = (lhs - rhs).abs() / torch.maximum(lhs, rhs.abs()).clamp_min(1e-300)
    pick = (lambda t: float(t[live].max())) if bool(live.any()) else (lambda t: 0.0)
    gy_norm = float(gy.norm())
    return {
        "grad_err": rel_err(gx, closed),
        "cos_ones_max": pick(cos1),
        "cos_yhat_max": pick(cosy),
        "thm41_lhs": float(lhs.sum()),
        "thm41_rhs": float(rhs.sum()),
        "thm41_gap_max": pick(gap),
        "grad_ratio": float(gx.norm()) / gy_norm if gy_norm > 0 else math.nan,
        "gamma_over_sigma": float((gamma / sigma).abs().mean()),
    }


def bn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(layerK, its BatchNorm module) for every block that has BN."""
    layers = getattr(model, "layers", {})
    return [(name, blk.norm) for name, blk in layers.items()
            if isinstance(blk.norm, nn.modules.batchnorm._BatchNorm)]


def check_layers(
    model: nn.Module, loss_fn: Any, x: torch.Tensor, y: torch.Tensor, buffers: dict[str, Any],
    spec: LipschitzSpec, gen: torch.Generator,
) -> dict[str, dict[str, float]]:
    """One functional forward/backward at theta_t (BN in training mode, buffer copies) with
    hooks on every BN module; then the C5 checks per layer."""
    layers = bn_layers(model)
    if not layers:
        return {}
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def grab(name: str, _m: nn.Module, inp: Any, out: Any) -> None:
        seen[name] = (inp[0], out)

    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    with forward_hooks(layers, grab):
        loss = loss_fn(functional_call(model, (params, buffers), (x,)), y)
    names = [n for n, _ in layers if n in seen]
    tensors = [t for n in names for t in seen[n]]
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    out: dict[str, dict[str, float]] = {}
    for i, (name, bn) in enumerate((n, dict(layers)[n]) for n in names):
        xin, _ = seen[name]
        gx, gy = grads[2 * i], grads[2 * i + 1]
        if gx is None or gy is None:
            continue
        xu = as_units(xin.detach()).T  # (C, m): one row per unit
        w = params.get(f"layers.{name}.norm.weight")
        gamma = w.detach() if w is not None else torch.ones(xu.shape[0], device=xu.device)
        rec = backward_checks(xu, as_units(gx).T, as_units(gy).T, gamma, bn.eps)
        rec.update(jacobian_errors(xu, bn.eps, spec.jacobian_units, spec.jacobian_rows, gen))
        out[name] = rec
    return out


class BnJacobianProbe(ProbeBase):
    """Every `every` steps, before the update: the C5 checks on each BN layer of the run."""

    name = "bn_jacobian"

    def __init__(self, spec: LipschitzSpec, seed: int) -> None:
        super().__init__(spec.every)
        self.spec = spec
        self.seed = seed
        self.series: list[dict[str, Any]] = []

    def before_update(self, ctx: Any) -> None:
        model = ctx.run.model
        buffers = buffer_copies(ctx.buffers_before)
        gen = torch.Generator(device="cpu").manual_seed(derive_seed(self.seed, ctx.step, 5113))
        with measuring(model, ctx.run.device):
            model.train()  # the Jacobian in question is that of batch statistics
            layers = check_layers(model, ctx.run.loss_fn, ctx.x, ctx.y, buffers, self.spec, gen)
        self.series.append({"step": ctx.step, "layers": layers})

    def result(self) -> dict[str, Any]:
        return {"series": self.series}


def make_probe(spec: Any, arm: Any, lr: float, seed: int, data: Any) -> BnJacobianProbe:
    """The C5 BN-Jacobian probe (registry: bn_jacobian)."""
    return BnJacobianProbe(spec.analysis.lipschitz, seed)
