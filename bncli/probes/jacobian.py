"""C5: BN's Jacobian (1/sigma)(I - 11^T/m - y^y^T/m) and Santurkar Thm 4.1 on real BN layers."""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    # two passes over one (.., rows, m) buffer: (-y^_i / (m sigma)) y^_j, then - 1/(m sigma);
    # + 1/sigma on the diagonal
    c = (-1.0 / m) / sigma  # (.., 1)
    jac = (yh[..., idx] * c).unsqueeze(-1) * yh.unsqueeze(-2)
    jac.add_(c.unsqueeze(-1))
    jac[..., r, idx] += 1.0 / sigma
    return jac


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
    def max_abs(t: torch.Tensor) -> torch.Tensor:  # (aminmax over a dim measured 2-3x slower here)
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

    def grouped(self) -> bool:
        return True

    @staticmethod
    def group_before_update(probes: Sequence[BnJacobianProbe], g: Any) -> None:
        """before_update for every due member of a fused group (bncli.probes.group)."""
        layers = check_layers_group(g, probes[0].spec, [p.seed for p in probes])
        for p, rec in zip(probes, layers, strict=True):
            p.series.append({"step": g.step, "layers": rec})

    def result(self) -> dict[str, Any]:
        return {"series": self.series}


def make_probe(spec: Any, arm: Any, lr: float, seed: int, data: Any) -> BnJacobianProbe:
    """The C5 BN-Jacobian probe (registry: bn_jacobian)."""
    return BnJacobianProbe(spec.analysis.lipschitz, seed)


# --------------------------------------------------------------------------- the group form


CHUNK = 1 << 17  # Jacobian entries per chunk of channels: its matrices stay in the CPU's cache


def _unit_stats(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per unit of x [N, m] (N >= 2): BN's saved mean and 1/σ (its kernel's), and the closed form's
    σ and ŷ (closed_form_jacobian's ops)."""
    _, mean, invstd = torch.ops.aten.native_batch_norm(x.unsqueeze(0), None, None, None, None, True, 0.0, eps)
    mu = x.mean(-1, keepdim=True)
    sigma = torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps)
    return mean, invstd, sigma, (x - mu) / sigma


def unit_jacobian_errors(xs: torch.Tensor, eps: float, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per unit of xs [N, m] (rows [N, R]: the Jacobian rows checked): max |autograd f32 − closed|,
    max |autograd f64 − closed| and max |closed| (closed form in float64): jacobian_errors's
    pieces for any number of units at once. Every (unit, row) is a channel of its own (the
    closed form's row and autograd's row from BN's backward kernel with cotangent e_row), in
    chunks of channels small enough to stay in the CPU's cache; the statistics of all units are
    taken once (BN's kernel takes another path for a single channel: always two or more)."""
    n, m = xs.shape
    if n == 1:
        return tuple(t[:1] for t in unit_jacobian_errors(xs.repeat(2, 1), eps, rows.repeat(2, 1)))
    r = rows.shape[1]
    x64, x32 = xs.double(), xs.float()
    stats = {torch.float64: (x64, *_unit_stats(x64, eps)[:2]), torch.float32: (x32, *_unit_stats(x32, eps)[:2])}
    _, _, sigma, yh = _unit_stats(x64, eps)
    coef, inv_sigma = (-1.0 / m) / sigma, 1.0 / sigma  # closed_form_jacobian's, per unit
    step = max(2, CHUNK // max(1, m))
    pieces = -(-r // step)  # a unit's rows in this many chunks of near-equal size
    if pieces > 1 and r // pieces >= 2:
        return _unit_chunks(stats, coef, inv_sigma, yh, rows, eps, pieces)
    unit = torch.arange(n, device=xs.device).repeat_interleave(r)  # channel -> its unit
    row = rows.reshape(-1)  # channel -> its row
    p = n * r
    starts = list(range(0, p, step))
    if p - starts[-1] < 2:  # no chunk of a single channel
        starts.pop()
    ends = [*starts[1:], p]
    size = max(b - a for a, b in zip(starts, ends, strict=True))
    zeros = {dt: torch.zeros(size, m, dtype=dt, device=xs.device) for dt in (torch.float32, torch.float64)}
    out = torch.empty(3, p, dtype=torch.float64, device=xs.device)  # per channel: e32, e64, scale
    for a, b in zip(starts, ends, strict=True):
        u, rr = unit[a:b], row[a:b]
        c = b - a
        at = torch.arange(c, device=xs.device)
        # closed_form_jacobian's row: (ŷ_r c) ŷ + c with c = -1/(mσ), + 1/σ at r (its ops, entry
        # for entry)
        cu = coef[u]
        ref = (yh[u, rr] * cu[:, 0]).unsqueeze(-1) * yh[u]
        ref.add_(cu)
        ref[at, rr] += inv_sigma[u, 0]
        out[2, a:b] = _max_abs_rows(ref)
        for k, dt in enumerate((torch.float32, torch.float64)):
            x, mean, inv = stats[dt]
            basis = zeros[dt][:c]
            basis[at, rr] = 1.0
            gx, _, _ = torch.ops.aten.native_batch_norm_backward(
                basis.unsqueeze(0), x[u].unsqueeze(0), None, None, None, mean[u], inv[u], True, eps,
                [True, False, False])
            basis[at, rr] = 0.0
            out[k, a:b] = _max_abs_rows(torch.sub(gx[0], ref) if k == 0 else gx[0].sub_(ref))
    per_unit = out.view(3, n, r)
    return per_unit[0].amax(1), per_unit[1].amax(1), per_unit[2].amax(1)


def _unit_chunks(stats: dict, coef: torch.Tensor, inv_sigma: torch.Tensor, yh: torch.Tensor,
                 rows: torch.Tensor, eps: float, pieces: int) -> tuple[torch.Tensor, ...]:
    """unit_jacobian_errors where a unit's rows fill several chunks (large m): each chunk holds
    rows of one unit only, so the unit's values, ŷ and statistics are broadcast, not gathered,
    and every buffer (the unit's values repeated, the cotangents, the closed form's rows, the
    differences) is allocated once and reused. The same ops on the same numbers: equal entry for
    entry to the gathered form (tests/test_group_probes.py)."""
    n, m = yh.shape
    r = rows.shape[1]
    dev = yh.device
    bounds = [round(i * r / pieces) for i in range(pieces + 1)]
    size = max(b - a for a, b in zip(bounds, bounds[1:]))
    f32, f64 = torch.float32, torch.float64
    xs_buf = {dt: torch.empty(size, m, dtype=dt, device=dev) for dt in (f32, f64)}
    basis = {dt: torch.zeros(size * m, dtype=dt, device=dev) for dt in (f32, f64)}
    ref_buf = torch.empty(size, m, dtype=f64, device=dev)
    diff = torch.empty(size, m, dtype=f64, device=dev)
    base = torch.arange(size, device=dev) * m  # each channel's first entry in the flat buffers
    # per (unit, chunk) and (e32, e64, scale): min and max of the difference (of the closed form
    # for scale), written in place: no small tensors kept alive between the chunks' large buffers
    lo = torch.empty(n * pieces * 3, dtype=f64, device=dev)
    hi = torch.empty_like(lo)
    j = 0
    for u in range(n):
        yu, cu, iu = yh[u], coef[u], inv_sigma[u]
        for dt in (f32, f64):
            xs_buf[dt].copy_(stats[dt][0][u].expand(size, m))
        for a, b in zip(bounds, bounds[1:]):
            c = b - a
            rr = rows[u, a:b]
            flat = base[:c] + rr  # (channel, its row) in the flat [c·m] buffers
            # closed_form_jacobian's row: (ŷ_r c) ŷ + c with c = -1/(mσ), + 1/σ at r (its ops,
            # entry for entry)
            ref = torch.mul((yu[rr] * cu).unsqueeze(-1), yu, out=ref_buf[:c])
            ref.add_(cu)
            ref.view(-1).index_put_((flat,), iu, accumulate=True)
            for dt in (f32, f64):
                x, mean, inv = stats[dt]
                cot = basis[dt][: c * m]
                cot.index_fill_(0, flat, 1.0)
                gx, _, _ = torch.ops.aten.native_batch_norm_backward(
                    cot.view(1, c, m), xs_buf[dt][:c].unsqueeze(0), None, None, None, mean[u].expand(c),
                    inv[u].expand(c), True, eps, [True, False, False])
                cot.index_fill_(0, flat, 0.0)
                # float32 - float64: the float32 rows widened into a buffer first (what sub's type
                # promotion does, without a new 1 MB temporary per chunk: those cost page faults)
                torch.aminmax(diff[:c].copy_(gx[0]).sub_(ref) if dt is f32 else gx[0].sub_(ref),
                              out=(lo[j], hi[j]))
                j += 1
            torch.aminmax(ref, out=(lo[j], hi[j]))
            j += 1
    # max |t| as _max_rel_err takes it: max(max t, −min t)
    most = torch.maximum(hi, lo.neg()).view(n, pieces, 3).amax(1)  # [n, 3]
    return most[:, 0], most[:, 1], most[:, 2]


def _max_abs_rows(t: torch.Tensor) -> torch.Tensor:
    return torch.maximum(t.amax(1), t.amin(1).neg())


def _sample(c: int, m: int, n_units: int, n_rows: int, gen: torch.Generator) -> tuple[list[int], torch.Tensor | None]:
    """jacobian_errors's draw: the units, then (m > n_rows) the rows, from the member's generator."""
    units = torch.randperm(c, generator=gen)[: min(n_units, c)].tolist()
    rows = None if m <= n_rows else torch.randperm(m, generator=gen)[:n_rows]
    return units, rows


def backward_checks_group(x: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, gamma: torch.Tensor,
                          eps: float) -> list[dict[str, float]]:
    """backward_checks for K members at once: x, gx, gy [K, C, m], gamma [K, C]; one dict each."""
    x, gx, gy, gamma = x.double(), gx.double(), gy.double(), gamma.double().unsqueeze(-1)
    m = x.shape[-1]
    mu = x.mean(-1, keepdim=True)
    sigma = torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps)
    yh = (x - mu) / sigma
    closed = gamma / sigma * (gy - gy.mean(-1, keepdim=True) - yh * (gy * yh).mean(-1, keepdim=True))
    gnorm = gx.norm(dim=-1)
    live = gnorm > 1e-30
    cos1 = gx.sum(-1).abs() / (gnorm * math.sqrt(m)).clamp_min(1e-300)
    cosy = (gx * yh).sum(-1).abs() / (gnorm * yh.norm(dim=-1)).clamp_min(1e-300)
    lhs = (gx**2).sum(-1)
    g2, s2 = gamma.squeeze(-1) ** 2, sigma.squeeze(-1) ** 2
    rhs = (g2 / s2) * ((gy**2).sum(-1) - gy.sum(-1) ** 2 / m - (gy * yh).sum(-1) ** 2 / m)
    gap = (lhs - rhs).abs() / torch.maximum(lhs, rhs.abs()).clamp_min(1e-300)
    any_live = live.any(-1)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return torch.where(any_live, torch.where(live, t, -math.inf).amax(-1), 0.0)

    err, ref = (gx - closed).abs().flatten(1).amax(1), closed.abs().flatten(1).amax(1)
    gy_norm = gy.flatten(1).norm(dim=1)
    cols = {
        "grad_err": torch.where(ref > 0, err / torch.where(ref > 0, ref, 1.0), err),
        "cos_ones_max": pick(cos1), "cos_yhat_max": pick(cosy),
        "thm41_lhs": lhs.sum(-1), "thm41_rhs": rhs.sum(-1), "thm41_gap_max": pick(gap),
        "grad_ratio": torch.where(gy_norm > 0, gx.flatten(1).norm(dim=1) / gy_norm, math.nan),
        "gamma_over_sigma": (gamma / sigma).abs().flatten(1).mean(1),
    }
    values = {k: v.tolist() for k, v in cols.items()}
    return [{k: float(values[k][i]) for k in cols} for i in range(x.shape[0])]


def check_layers_group(g: Any, spec: LipschitzSpec, seeds: list[int]) -> list[dict[str, dict[str, float]]]:
    """check_layers for every member of g.members (seeds: each member's run seed): one stacked
    functional forward/backward at θ_t (BN in training mode, buffer copies) with the
    normalizations tapped, the backward checks batched over members, and every sampled unit's
    Jacobian check of every member and layer in one batched computation."""
    model = g.model
    names = [pre[len("layers."):] for pre, kind, *_ in model.static if kind == "batch"]
    if not names:
        return [{} for _ in g.members]
    eps_of = {pre[len("layers."):]: eps for pre, kind, _, eps, *_ in model.static if kind == "batch"}
    idx = g.index()
    taps: list = []
    with torch.enable_grad():
        params = {n: p.detach().index_select(0, idx).requires_grad_(True) for n, p in model.params.items()}
        out = model.functional(params, g.buffer_copies(idx), g.x.index_select(0, idx), True, taps)
        kinds = [kind for _, kind, *_ in model.static if kind is not None]
        bn_taps = [t for t, kind in zip(taps, kinds, strict=True) if kind == "batch"]
        loss = g.loss_of(out, g.y.index_select(0, idx)).sum()
        grads = torch.autograd.grad(loss, [t for pair in bn_taps for t in pair])
    records: list[dict[str, dict[str, float]]] = [{} for _ in g.members]
    gens = [torch.Generator(device="cpu").manual_seed(derive_seed(s, g.step, 5113)) for s in seeds]
    units_x, unit_rows, owners = [], [], []  # every sampled unit: its values, rows, (member, layer)
    for li, name in enumerate(names):
        xin = bn_taps[li][0].detach().transpose(1, 2)  # [K, U, m]: one row per unit
        gx, gy = grads[2 * li].transpose(1, 2), grads[2 * li + 1].transpose(1, 2)
        w = params.get(f"layers.{name}.norm.weight")
        gamma = w.detach() if w is not None else torch.ones(xin.shape[:2], dtype=xin.dtype, device=xin.device)
        for j, rec in enumerate(backward_checks_group(xin, gx, gy, gamma, eps_of[name])):
            records[j][name] = rec
        c, m = xin.shape[1], xin.shape[2]
        for j, gen in enumerate(gens):
            units, rows = _sample(c, m, spec.jacobian_units, spec.jacobian_rows, gen)
            all_rows = torch.arange(m) if rows is None else rows
            units_x.append(xin[j, units])
            unit_rows.append(all_rows.to(xin.device).unsqueeze(0).expand(len(units), -1))
            owners.append((j, name, len(units), m, len(all_rows)))
    by_eps: dict[float, list[int]] = {}
    for o, (_, name, *_rest) in enumerate(owners):
        by_eps.setdefault(eps_of[name], []).append(o)
    per_owner: dict[int, tuple[float, float]] = {}
    for eps, which in by_eps.items():
        xs = torch.cat([units_x[o] for o in which])
        rows_all = torch.cat([unit_rows[o] for o in which])
        e32, e64, scale = unit_jacobian_errors(xs, eps, rows_all)
        safe = torch.where(scale > 0, scale, 1.0)
        r32 = torch.where(scale > 0, e32 / safe, e32)
        r64 = torch.where(scale > 0, e64 / safe, e64)
        at = 0
        for o in which:
            n = owners[o][2]
            per_owner[o] = (float(r32[at:at + n].max()), float(r64[at:at + n].max()))
            at += n
    for o, (j, name, n_units, m, n_rows) in enumerate(owners):
        err32, err64 = per_owner[o]
        records[j][name].update({"jacobian_err_f32": err32, "jacobian_err_f64": err64,
                                 "units_checked": n_units, "rows_checked": n_rows, "m": m})
    return records
