"""The landscape views beside C4 (opt-in, shown, not judged): the Hessian's trace, top-k eigenvalues
and spectral density on the lipschitz measurement steps (PyHessian's), and the filter-normalized
loss surface at the end of training (Li et al.'s)."""

from __future__ import annotations

from typing import Any

import torch

from bncli.probes.base import ProbeBase, buffer_copies, measuring
from bncli.probes.hessian_views import hessian_views
from bncli.probes.landscape import _loss_of
from bncli.probes.surface import filter_directions, loss_surface, surface_coords, surface_summary
from bncli.runtime import derive_seed
from bncli.spec import LipschitzSpec

SURFACE_SALT = 3301  # derive_seed(seed, directions_seed, SURFACE_SALT, direction index)
VIEWS_SALT = 4243  # derive_seed(seed, step, VIEWS_SALT): the trace's, top-k's and SLQ's draws


def views_on(spec: LipschitzSpec) -> bool:
    """Whether any of the opt-in views is asked for."""
    return spec.surface is not None or spec.hessian_trace or spec.hessian_density


def surface_directions(theta: dict[str, torch.Tensor], seed: int, spec: LipschitzSpec) -> list[dict[str, torch.Tensor]]:
    """The surface's filter-normalized directions for a run of `seed` (the same draws for every arm)."""
    s = spec.surface
    assert s is not None
    return [filter_directions(theta, derive_seed(seed, s.directions_seed, SURFACE_SALT, i)) for i in range(s.dims)]


def line_ts(points: int) -> list[float]:
    """The interpolation line's t: the surface grid's points over [−0.5, 1.5] plus exactly t = 0 and 1
    (the ends a barrier is measured from; an even or coarse grid misses them)."""
    grid = (0.5 + c for c in surface_coords(points, 1.0))
    return sorted({0.0, 1.0, *(t for t in grid if abs(t) > 1e-9 and abs(t - 1.0) > 1e-9)})


class LandscapeViewsProbe(ProbeBase):
    """Every `every` steps, before the update: trace / top-k / density (as asked); at the end (and
    optionally at the start): the loss surface on a fixed batch. Nothing is written."""

    name = "landscape_views"

    def __init__(self, spec: LipschitzSpec, seed: int, data: Any) -> None:
        super().__init__(spec.every)
        self.spec = spec
        self.seed = seed
        self.data = data
        self.series: list[dict[str, Any]] = []
        self.surfaces: list[dict[str, Any]] = []

    def before_update(self, ctx: Any) -> None:
        spec = self.spec
        if not (spec.hessian_trace or spec.hessian_density):
            return
        model = ctx.run.model
        theta = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        buffers = buffer_copies(ctx.buffers_before)
        with measuring(model, ctx.run.device):
            model.train(spec.bn_mode == "train")
            loss_of = _loss_of(model, ctx.run.loss_fn, ctx.x, ctx.y)
            rec = hessian_views(
                lambda p: loss_of(p, buffer_copies(buffers)), theta, trace=spec.hessian_trace,
                top_k=spec.hessian_top_k, density=spec.hessian_density, density_runs=spec.density_runs,
                density_steps=spec.density_steps, trace_tol=spec.hessian_trace_tol,
                trace_max=spec.hessian_trace_max, eig_tol=spec.hessian_tol, eig_iters=max(spec.hessian_iters, 50),
                seed=derive_seed(self.seed, ctx.step, VIEWS_SALT) % (1 << 31))
        self.series.append({"step": ctx.step, **rec})

    def _surface(self, run: Any, step: int) -> None:
        spec, s = self.spec, self.spec.surface
        assert s is not None
        model = run.model
        x, y = self.data.probe_batch(s.probe_size)
        x, y = x.to(run.device), y.to(run.device)
        theta = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        buffers = buffer_copies(dict(model.named_buffers()))
        coords = surface_coords(s.points, s.span)
        with measuring(model, run.device):
            model.train(spec.bn_mode == "train")
            dirs = surface_directions(theta, self.seed, spec)
            # vmap over grid points pays on a GPU; on the CPU one point at a time is faster (measured
            # on the sample CNN and the 6x128 MLP, 21x21, 1 thread: 3.5-6.3 s vmapped vs 2.7 s; 1.0 vs 0.8 s)
            batched = spec.batched and torch.device(run.device).type == "cuda"
            values = loss_surface(model, run.loss_fn, x, y, theta, buffers, dirs, coords,
                                  batched=batched).double().cpu().tolist()
        self.surfaces.append({"step": step, "dims": s.dims, "coords": coords, "loss": values,
                              **{f"surface_{k}": v for k, v in surface_summary(values, coords).items()}})

    def on_start(self, run: Any) -> None:
        s = self.spec.surface
        if s is not None and s.interpolate:  # θ₀, kept for the line to θ_end (one copy of the weights)
            self.theta0 = {n: p.detach().clone() for n, p in run.model.named_parameters() if p.requires_grad}
        if s is not None and s.at_init:
            self._surface(run, 0)

    def _interpolation(self, run: Any) -> None:
        """L(θ₀ + t(θ_end − θ₀)) on the surface's batch, t over [−0.5, 1.5] with t = 0 and 1 exactly
        (Goodfellow et al. 2015)."""
        s = self.spec.surface
        assert s is not None
        model = run.model
        x, y = self.data.probe_batch(s.probe_size)
        x, y = x.to(run.device), y.to(run.device)
        end = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        direction = {n: end[n] - self.theta0[n] for n in end}
        ts = line_ts(s.points)
        with measuring(model, run.device):
            model.train(self.spec.bn_mode == "train")
            # the line starts at θ₀: coordinates t − 0 from θ₀ along θ_end − θ₀
            values = loss_surface(model, run.loss_fn, x, y, self.theta0, buffer_copies(dict(model.named_buffers())),
                                  [direction], ts, batched=torch.device(run.device).type == "cuda")
        self.interpolation = {"t": ts, "loss": values.double().cpu().tolist()}

    def on_end(self, run: Any) -> None:
        if self.spec.surface is None or run.diverged_at is not None or run.interrupted:
            return
        self._surface(run, run.steps)
        if self.spec.surface.interpolate and hasattr(self, "theta0"):
            self._interpolation(run)

    def result(self) -> dict[str, Any]:
        out = {"bn_mode": self.spec.bn_mode, "series": self.series, "surfaces": self.surfaces}
        if getattr(self, "interpolation", None) is not None:
            out["interpolation"] = self.interpolation
        return out


def make_probe(spec: Any, arm: Any, lr: float, seed: int, data: Any) -> LandscapeViewsProbe:
    """The landscape views probe (registry: landscape_views)."""
    return LandscapeViewsProbe(spec.analysis.lipschitz, seed, data)
