"""C4: the loss landscape along the gradient (Santurkar §3.2) and the extreme Hessian eigenvalues."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from bncli.probes.base import ProbeBase, buffer_copies, measuring, stacked_buffer_copies
from bncli.probes.hessian import hessian_extremes, lanczos_extremes_group
from bncli.runtime import derive_seed
from bncli.spec import LipschitzSpec

Tensors = dict[str, torch.Tensor]
LossFn = Callable[..., torch.Tensor]


def eta_grid(lr: float, spec: LipschitzSpec) -> list[float]:
    """The step lengths eta' (absolute): eta_points values over [low, high] x the learning rate."""
    lo, hi = spec.eta_range
    n = spec.eta_points
    if spec.eta_spacing == "log":
        pts = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    else:
        pts = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    return [p * lr for p in pts]


def _loss_of(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor):
    # buffers are an argument (not captured) so BN's in-place running-stat update hits a copy
    # that torch.func is allowed to mutate
    def loss(params: Tensors, buffers: Tensors) -> torch.Tensor:
        return loss_fn(functional_call(model, (params, buffers), (x,)), y)

    return loss


def _sq_dist(a: Tensors, b: Tensors) -> torch.Tensor:
    return sum(((a[k] - b[k]) ** 2).sum() for k in a)  # type: ignore[return-value]


def line_search(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    theta: Tensors,
    g: Tensors,
    etas: list[float],
    buffers: Tensors,
    batched: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L(theta - eta' g) and ||g - grad L(theta - eta' g)|| for every eta' (two K-vectors).

    Batched: one vmap over the grid, each point with its own copy of the BN buffers (BN in
    training mode writes its running statistics in place; a shared buffer would clash).
    """
    loss = _loss_of(model, loss_fn, x, y)
    ref = next(iter(theta.values()))
    eta_t = torch.tensor(etas, dtype=ref.dtype, device=ref.device)

    def point(eta: torch.Tensor, bufs: Tensors) -> tuple[torch.Tensor, torch.Tensor]:
        params = {k: theta[k] - eta * g[k] for k in theta}
        grads, value = grad_and_value(loss)(params, bufs)
        return value, _sq_dist(g, grads).sqrt()

    if batched:
        k = len(etas)
        bufs = stacked_buffer_copies(buffers, k)
        values, dists = vmap(point)(eta_t, bufs)
        return values.detach(), dists.detach()
    out = [point(eta_t[i], buffer_copies(buffers)) for i in range(len(etas))]
    return (torch.stack([v for v, _ in out]).detach(), torch.stack([d for _, d in out]).detach())


def full_gradient(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor,
    theta: Tensors, buffers: Tensors,
) -> tuple[Tensors, float]:
    """grad L(theta) and L(theta) without touching .grad (used for --bn-mode eval)."""
    grads, value = grad_and_value(_loss_of(model, loss_fn, x, y))(theta, buffer_copies(buffers))
    return {k: v.detach() for k, v in grads.items()}, float(value)


def hessian_top_eig(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    theta: Tensors,
    buffers: Tensors,
    iters: int,
    tol: float,
    generator: torch.Generator,
) -> tuple[float, int, bool]:
    """Largest-magnitude Hessian eigenvalue of L at theta by power iteration on HVPs: the method
    bncli used before Lanczos (bncli.probes.hessian), kept as the benchmark's baseline. Its stopping
    rule is not convergence (see SCIENCE.md C4); don't use it for measurements.

    HVPs by double backward on one graph. The start vector comes from `generator` (CPU, never
    the global RNG). Stops when the Rayleigh quotient changes by less than tol x its size.
    Returns (eigenvalue, iterations used, converged).
    """
    params = {k: v.detach().clone().requires_grad_(True) for k, v in theta.items()}
    loss = _loss_of(model, loss_fn, x, y)(params, buffer_copies(buffers))
    keys = list(params)
    grads = torch.autograd.grad(loss, [params[k] for k in keys], create_graph=True,
                                allow_unused=True)
    pairs = [(params[k], gr) for k, gr in zip(keys, grads, strict=True) if gr is not None]
    if not pairs:
        return 0.0, 0, True
    ps, gs = [p for p, _ in pairs], [gr for _, gr in pairs]
    v = [torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p) for p in ps]
    norm = torch.sqrt(sum((t * t).sum() for t in v))
    v = [t / norm for t in v]
    eig, prev = 0.0, math.nan
    for i in range(1, iters + 1):
        hv = torch.autograd.grad(gs, ps, grad_outputs=v, retain_graph=True, allow_unused=True)
        hv = [torch.zeros_like(p) if h is None else h for p, h in zip(ps, hv, strict=True)]
        eig = float(sum((a * b).sum() for a, b in zip(v, hv, strict=True)))
        hnorm = torch.sqrt(sum((h * h).sum() for h in hv))
        if not math.isfinite(eig) or float(hnorm) == 0.0:
            return eig, i, False
        if math.isfinite(prev) and abs(eig - prev) <= tol * max(abs(eig), 1e-12):
            return eig, i, True
        prev = eig
        v = [h / hnorm for h in hv]
    return eig, iters, False


def landscape_point(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    theta: Tensors,
    g: Tensors,
    etas: list[float],
    buffers: Tensors,
    batched: bool = True,
) -> dict[str, Any]:
    """One measurement: the per-eta' series and the step's summary numbers (plain floats)."""
    losses, dists = line_search(model, loss_fn, x, y, theta, g, etas, buffers, batched)
    gnorm = float(torch.sqrt(sum((t * t).sum() for t in g.values())))
    return _summary([float(v) for v in losses], [float(v) for v in dists], etas, gnorm)


def _summary(loss_list: list[float], dist_list: list[float], etas: list[float], gnorm: float) -> dict[str, Any]:
    finite = all(math.isfinite(v) for v in loss_list + dist_list)
    betas = [d / (e * gnorm) if gnorm > 0 else 0.0 for d, e in zip(dist_list, etas, strict=True)]
    return {
        "loss": loss_list,
        "grad_pred": dist_list,
        "loss_min": min(loss_list) if finite else math.inf,
        "loss_max": max(loss_list) if finite else math.inf,
        "loss_variation": max(loss_list) - min(loss_list) if finite else math.inf,
        "grad_pred_min": min(dist_list) if finite else math.inf,
        "grad_pred_max": max(dist_list) if finite else math.inf,
        "grad_pred_mean": sum(dist_list) / len(dist_list) if finite else math.inf,
        "beta": max(betas) if finite else math.inf,
        "grad_norm": gnorm,
    }


# points (members x step lengths) per stacked pass of the group line search, at most: memory for
# their parameters, gradients and activations stays modest; more points, more passes
GROUP_POINT_BYTES = 1 << 28


def line_search_group(g: Any, etas: list[list[float]], bn_train: bool) -> list[dict[str, Any]]:
    """landscape_point for every member of g.members (etas: each member's grid, of one length) on
    the stacked model: the members x grid points as one stacked forward/backward (each point its
    own copy of its member's BN buffers), in chunks of members when that is large. With BN in
    eval mode each member's g is its inference network's gradient (full_gradient), its loss at θ
    returned as "loss_at_theta". Equal to the per-member form up to rounding."""
    model = g.model
    idx = g.index()
    n_pts = len(etas[0])
    theta = {n: p.detach().index_select(0, idx) for n, p in model.params.items()}
    x, y = g.x.index_select(0, idx), g.y.index_select(0, idx)
    loss0: list[float | None] = [None] * len(idx)
    if bn_train:
        grads = {n: (p.grad.index_select(0, idx) if p.grad is not None else torch.zeros_like(theta[n]))
                 for n, p in model.params.items()}
    else:
        with torch.enable_grad():
            leaves = {n: t.requires_grad_(True) for n, t in ((n, v.detach()) for n, v in theta.items())}
            losses = g.loss_of(model.functional(leaves, g.buffer_copies(idx), x, False), y)
            got = torch.autograd.grad(losses.sum(), list(leaves.values()))
        grads = {n: t.detach() for n, t in zip(leaves, got, strict=True)}
        loss0 = [float(v) for v in losses.detach()]
    gnorms = torch.sqrt(sum((t * t).flatten(1).sum(1) for t in grads.values()))  # type: ignore[arg-type]
    width = sum(p[0].numel() for p in theta.values()) * 3 + x[0].numel() * 4 * len(model.static)
    per_chunk = max(1, GROUP_POINT_BYTES // max(1, width * x.element_size() * n_pts))
    out: list[dict[str, Any]] = []
    for c in range(0, len(idx), per_chunk):
        sl = slice(c, c + per_chunk)
        k = len(etas[sl])
        eta_t = torch.tensor(etas[sl], dtype=x.dtype, device=x.device).reshape(-1)  # [k·n]
        with torch.enable_grad():
            pts = {}
            for n, t in theta.items():
                e = eta_t.view(-1, *([1] * (t.dim() - 1)))
                pts[n] = (t[sl].repeat_interleave(n_pts, 0) - e * grads[n][sl].repeat_interleave(n_pts, 0)
                          ).requires_grad_(True)
            bufs = g.buffer_copies(idx[sl], repeat=n_pts)
            values = g.loss_of(model.functional(pts, bufs, x[sl].repeat_interleave(n_pts, 0), bn_train),
                               y[sl].repeat_interleave(n_pts, 0))
            at = torch.autograd.grad(values.sum(), list(pts.values()))
        sq = sum(((grads[n][sl].repeat_interleave(n_pts, 0) - a) ** 2).flatten(1).sum(1)
                 for n, a in zip(pts, at, strict=True))
        dists = torch.sqrt(sq).view(k, n_pts).tolist()  # type: ignore[union-attr]
        vals = values.detach().view(k, n_pts).tolist()
        for j in range(k):
            jj = c + j
            rec = _summary(vals[j], dists[j], etas[jj], float(gnorms[jj]))
            if loss0[jj] is not None:
                rec["loss_at_theta"] = loss0[jj]
            out.append(rec)
    return out


def hessian_group(g: Any, bn_train: bool, spec: LipschitzSpec, seeds: list[int]) -> list[dict[str, Any]]:
    """hessian_extremes for every member of g.members at θ_t on the stacked model: one graph of
    the members' summed loss (BN in the probe's mode, buffer copies), each round of the
    side-by-side Lanczos one double backward with every running member's vector in its block
    (hessian.lanczos_extremes_group). A member's flat vector is its Net's (parameter order and
    layout: the stacked linear weights are transposed)."""
    model = g.model
    idx = g.index()
    with torch.enable_grad():
        leaves = {n: p.detach().index_select(0, idx).requires_grad_(True) for n, p in model.params.items()}
        loss = g.loss_of(model.functional(leaves, g.buffer_copies(idx), g.x.index_select(0, idx), bn_train),
                         g.y.index_select(0, idx)).sum()
        names = list(leaves)
        grads = torch.autograd.grad(loss, [leaves[n] for n in names], create_graph=True, allow_unused=True)
    used = [(n, gr) for n, gr in zip(names, grads, strict=True) if gr is not None]
    live = [(n, gr) for n, gr in used if gr.requires_grad]
    shapes = {n: (leaves[n].shape[1:][::-1] if n in model.transposed else leaves[n].shape[1:]) for n, _ in used}
    sizes = [leaves[n][0].numel() for n, _ in used]

    def batched(todo: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        vs = {n: torch.zeros_like(leaves[n]) for n, _ in live}
        for j, v in todo.items():
            for (n, _), part in zip(used, v.split(sizes), strict=True):
                if n in vs:
                    t = part.reshape(shapes[n]).to(leaves[n])
                    vs[n][j] = t.T if n in model.transposed else t
        if live:
            with torch.enable_grad():
                hv = torch.autograd.grad([gr for _, gr in live], [leaves[n] for n, _ in used],
                                         grad_outputs=[vs[n] for n, _ in live], retain_graph=True, allow_unused=True)
        else:
            hv = tuple(None for _ in used)
        out = {}
        for j in todo:
            parts = []
            for (n, _), h in zip(used, hv, strict=True):
                t = torch.zeros_like(leaves[n][j]) if h is None else h[j].detach()
                parts.append((t.T if n in model.transposed else t).reshape(-1))
            out[j] = torch.cat(parts)
        return out

    return lanczos_extremes_group(batched, sum(sizes), seeds, tol=spec.hessian_tol, max_iters=spec.hessian_iters)


class LandscapeProbe(ProbeBase):
    """Every `every` steps, before the update: line search along -g, ||g||, optional lambda_max."""

    name = "landscape"

    def __init__(self, spec: LipschitzSpec, lr: float, seed: int) -> None:
        super().__init__(spec.every)
        self.spec = spec
        self.lr = lr
        self.seed = seed
        self.etas = eta_grid(lr, spec)
        self.series: list[dict[str, Any]] = []

    def before_update(self, ctx: Any) -> None:
        model = ctx.run.model
        spec = self.spec
        # g is the gradient SGD is about to use; copy it before anything else runs
        g = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
             for n, p in model.named_parameters() if p.requires_grad}
        theta = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        buffers = buffer_copies(ctx.buffers_before)
        with measuring(model, ctx.run.device):
            model.train(spec.bn_mode == "train")
            loss0 = float(ctx.loss)
            if spec.bn_mode == "eval":
                # the inference network's own gradient: eval-mode BN, no noise
                g, loss0 = full_gradient(model, ctx.run.loss_fn, ctx.x, ctx.y, theta, buffers)
            # under a schedule the η′ grid follows this step's lr (a point records its own grid)
            step_lr = getattr(ctx, "lr", None)
            etas = self.etas if step_lr is None or step_lr == self.lr else eta_grid(step_lr, spec)
            rec = landscape_point(model, ctx.run.loss_fn, ctx.x, ctx.y, theta, g, etas,
                                  buffers, spec.batched)
            rec = {"step": ctx.step, "loss_at_theta": loss0, **rec}
            if etas is not self.etas:
                rec["eta"] = etas
            if spec.hessian:
                seed = derive_seed(self.seed, ctx.step, 4241)
                loss_of = _loss_of(model, ctx.run.loss_fn, ctx.x, ctx.y)
                h = hessian_extremes(lambda p: loss_of(p, buffer_copies(buffers)), theta,
                                     tol=spec.hessian_tol, max_iters=spec.hessian_iters, seed=seed)
                rec.update(lambda_max=h["lambda_max"], lambda_min=h["lambda_min"],
                           hessian_residual_max=h["residual_max"], hessian_residual_min=h["residual_min"],
                           hessian_converged_max=h["converged_max"],
                           hessian_converged_min=h["converged_min"], hessian_hvps=h["hvps"])
        self.series.append(rec)

    def grouped(self) -> bool:
        return True

    def etas_at(self, step_lr: float | None) -> list[float]:
        return self.etas if step_lr is None or step_lr == self.lr else eta_grid(step_lr, self.spec)

    @staticmethod
    def group_before_update(probes: Sequence[LandscapeProbe], g: Any) -> None:
        """before_update for every due member of a fused group (bncli.probes.group)."""
        grids = [p.etas_at(g.lrs[i]) for p, i in zip(probes, g.members, strict=True)]
        points = line_search_group(g, grids, probes[0].spec.bn_mode == "train")
        losses = g.losses.tolist()
        for p, i, etas, point in zip(probes, g.members, grids, points, strict=True):
            loss0 = point.pop("loss_at_theta", losses[i])
            rec = {"step": g.step, "loss_at_theta": loss0, **point}
            if etas is not p.etas:
                rec["eta"] = etas
            p.series.append(rec)
        spec = probes[0].spec
        if spec.hessian:
            seeds = [derive_seed(p.seed, g.step, 4241) for p in probes]
            for p, h in zip(probes, hessian_group(g, spec.bn_mode == "train", spec, seeds), strict=True):
                p.series[-1].update(
                    lambda_max=h["lambda_max"], lambda_min=h["lambda_min"],
                    hessian_residual_max=h["residual_max"], hessian_residual_min=h["residual_min"],
                    hessian_converged_max=h["converged_max"], hessian_converged_min=h["converged_min"],
                    hessian_hvps=h["hvps"])

    def result(self) -> dict[str, Any]:
        return {"eta": self.etas, "bn_mode": self.spec.bn_mode, "series": self.series}


def make_probe(spec: Any, arm: Any, lr: float, seed: int, data: Any) -> LandscapeProbe:
    """The C4 landscape probe (registry: landscape)."""
    return LandscapeProbe(spec.analysis.lipschitz, lr, seed)
