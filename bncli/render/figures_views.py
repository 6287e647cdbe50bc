"""Figures of the landscape views beside C4 (issue 33; evidence, not judged): the filter-normalized
surface (1-D curves BN vs plain in one plot; 2-D contours side by side on the same levels), the
Hessian's spectral density on a log scale, and its trace and top eigenvalues over training. Each
learning rate the runs cover has its own row of panels (its title says which)."""

from __future__ import annotations

import math
from typing import Any

from bncli.render import figstyle as fs
from bncli.results import CommandResult

PROBE = "landscape_views"


def _first_seed(result: CommandResult, arm: str, lr: float) -> Any:
    rs = fs.runs_of(result, arm, lr, PROBE)
    return min(rs, key=lambda r: r.seed) if rs else None


def _end_surface(run: Any) -> dict[str, Any] | None:
    surfs = [s for s in run.probes[PROBE].get("surfaces", []) if s.get("step", 0) != 0] or \
        run.probes[PROBE].get("surfaces", [])
    return surfs[-1] if surfs else None


def _lrs(result: CommandResult) -> list[float]:
    """The learning rates whose runs hold the views."""
    return [lr for lr in fs.result_lrs(result) if any(fs.runs_of(result, a, lr, PROBE) for a in fs.result_arms(result))]


def _panels(result: CommandResult, pick: Any) -> list[tuple[float, list[tuple[str, Any]]]]:
    """[(lr, [(arm, pick(arm, lr)), ...]), ...]: what each learning rate's panel draws per arm
    (arms whose pick is None left out; learning rates with nothing to draw too)."""
    panels = []
    for lr in _lrs(result):
        lines = [(arm, got) for arm in fs.result_arms(result) if (got := pick(arm, lr)) is not None]
        if lines:
            panels.append((lr, lines))
    return panels


def _levels(surfaces: list[dict[str, Any]]) -> tuple[Any, Any]:
    """Contour levels shared by every panel, log-spaced where all losses are positive (the arms'
    ranges can differ by orders of magnitude), and the colour norm that goes with them."""
    import numpy as np
    from matplotlib.colors import BoundaryNorm, LogNorm

    vals = np.concatenate([np.asarray(s["loss"], dtype=float).ravel() for s in surfaces])
    vals = vals[np.isfinite(vals)]
    if vals.size and vals.max() > vals.min() > 0:
        levels = np.geomspace(vals.min(), vals.max(), 16)
        return levels, LogNorm(levels[0], levels[-1])
    if vals.size and vals.max() > vals.min():
        levels = np.linspace(vals.min(), vals.max(), 16)
        return levels, BoundaryNorm(levels, 256)
    return 16, None


def surface_figure(result: CommandResult, colors: dict[str, str]) -> Any:
    """The end-of-training surface of each arm's first seed (the same directions for every arm),
    a row per learning rate; 2-D contours on levels shared by every panel."""
    def pick(arm: str, lr: float) -> Any:
        r = _first_seed(result, arm, lr)
        return _end_surface(r) if r is not None else None

    rows = _panels(result, pick)
    if not rows:
        return None
    import numpy as np

    one_d = rows[0][1][0][1]["dims"] == 1
    lrs_text = ", ".join(f"{lr:g}" for lr, _ in rows)
    with fs.style() as plt:
        if one_d:
            fig, axes = fs.new_figure(plt, 1, len(rows), 4.0, 2.6)
            for j, (lr, got) in enumerate(rows):
                ax = axes[0][j]
                for arm, s in got:
                    ax.plot(s["coords"], s["loss"], color=colors[arm], label=arm, marker=".")
                ax.set_title(f"lr {lr:g}")
                ax.set_xlabel("α (filter-normalized direction)")
                if j == 0:
                    ax.set_ylabel("loss")
        else:
            cols = max(len(got) for _, got in rows)
            fig, axes = fs.new_figure(plt, len(rows), cols, 3.0, 2.8)
            levels, norm = _levels([s for _, got in rows for _, s in got])
            for i, (lr, got) in enumerate(rows):
                for j in range(cols):
                    ax = axes[i][j]
                    if j >= len(got):
                        ax.set_visible(False)
                        continue
                    arm, s = got[j]
                    c = np.asarray(s["coords"])
                    z = np.asarray(s["loss"], dtype=float)
                    # filled bands on the shared levels: a surface flat on that scale shows as one
                    # colour, not as an empty panel; the lines and their labels on top
                    ax.contourf(c, c, z.T, levels=levels, cmap="viridis", norm=norm, alpha=0.85)
                    cs = ax.contour(c, c, z.T, levels=levels, colors="white", linewidths=0.4)
                    ax.clabel(cs, fontsize=5, fmt="%.3g")
                    ax.plot([0], [0], marker="+", color="k")
                    rng = s.get("surface_range")  # on the shared levels a flat surface is one band: say how flat
                    head = f"{arm}, lr {lr:g}"
                    ax.set_title(f"{head} (range {rng:.3g})" if isinstance(rng, (int, float)) else head)
                    ax.set_xlabel("α")
                    if j == 0:
                        ax.set_ylabel("β")
                    ax.grid(False)
        fs.finish(fig, f"Loss surface around the end point (Li et al. 2018; lr {lrs_text}, first seed)")
    return fig


def density_figure(result: CommandResult, colors: dict[str, str]) -> Any:
    """The last measured step's spectral density (SLQ) of each arm's first seed, log scale, a
    panel per learning rate."""
    def pick(arm: str, lr: float) -> Any:
        r = _first_seed(result, arm, lr)
        series = [s for s in (r.probes[PROBE].get("series", []) if r else []) if s.get("hessian_density")]
        return series[-1] if series else None

    panels = _panels(result, pick)
    if not panels:
        return None
    with fs.style() as plt:
        fig, axes = fs.new_figure(plt, 1, len(panels), 4.0, 2.6)
        for j, (lr, lines) in enumerate(panels):
            ax = axes[0][j]
            for arm, last in lines:
                d = last["hessian_density"]
                ys = [max(v, 1e-8) for v in d["density"]]
                ax.semilogy(d["grid"], ys, color=colors[arm], label=arm)
            steps = sorted({last["step"] for _, last in lines})
            ax.set_title(f"lr {lr:g}, step {', '.join(str(s) for s in steps)}")
            ax.set_xlabel("eigenvalue")
            if j == 0:
                ax.set_ylabel("density")
        fs.finish(fig, "Hessian eigenvalue density (SLQ; last measured step, first seed)")
    return fig


def trace_figure(result: CommandResult, colors: dict[str, str]) -> Any:
    """tr H and λ₁ over training steps: mean over seeds per arm, log scale where it can be; a row
    per learning rate."""
    keys = [("hessian_trace", "tr H (Hutchinson)"), ("lambda1", "λ₁")]
    lrs = _lrs(result)
    if not lrs:
        return None
    with fs.style() as plt:
        fig, axes = fs.new_figure(plt, len(lrs), 2, 3.0, 2.4)
        drawn = False
        for i, lr in enumerate(lrs):
            for j, (key, label) in enumerate(keys):
                ax = axes[i][j]
                vals: list[float] = []
                for arm in fs.result_arms(result):
                    per = []
                    for r in fs.runs_of(result, arm, lr, PROBE):
                        ser = r.probes[PROBE].get("series", [])
                        xs = [s["step"] for s in ser]
                        ys = [(s.get("hessian_top") or [math.nan])[0] if key == "lambda1" else s.get(key, math.nan)
                              for s in ser]
                        per.append((xs, ys))
                    if not per or not any(per[0][0]):
                        continue
                    xs, m, sd = fs.mean_std_over(per)
                    if fs.has_finite(m):  # a Hutchinson trace can be negative: a linear axis then
                        fs.band(ax, xs, m, sd, colors[arm], arm, marker=".")
                        drawn = True
                        vals += m
                fs.log_if_possible(ax, vals, spread=10)
                ax.set_title(f"{label}, lr {lr:g}")
                ax.set_xlabel("step")
                ax.set_ylabel(label)
        if not drawn:
            plt.close(fig)
            return None
        fs.finish(fig, "Hessian trace and top eigenvalue over training (mean ± std over seeds)")
    return fig


def interpolation_figure(result: CommandResult, colors: dict[str, str]) -> Any:
    """L(θ₀ + t(θ_end − θ₀)) per arm, mean ± std over seeds, log scale; a panel per learning rate."""
    def pick(arm: str, lr: float) -> Any:
        per = [(r.probes[PROBE]["interpolation"]["t"], r.probes[PROBE]["interpolation"]["loss"])
               for r in fs.runs_of(result, arm, lr, PROBE) if r.probes[PROBE].get("interpolation")]
        return per or None

    panels = _panels(result, pick)
    if not panels:
        return None
    with fs.style() as plt:
        fig, axes = fs.new_figure(plt, 1, len(panels), 4.0, 2.6)
        drawn = False
        for j, (lr, lines) in enumerate(panels):
            ax = axes[0][j]
            for arm, per in lines:
                xs, m, sd = fs.mean_std_over(per)
                if fs.has_finite(m):
                    fs.band(ax, xs, m, sd, colors[arm], arm, log=True)
                    drawn = True
            ax.axvline(0, color="0.6", lw=0.6, ls=":")
            ax.axvline(1, color="0.6", lw=0.6, ls=":")
            ax.set_title(f"lr {lr:g}")
            ax.set_xlabel("t (0: initial weights, 1: final)")
            if j == 0:
                ax.set_ylabel("loss")
        if not drawn:
            plt.close(fig)
            return None
        fs.finish(fig, "Loss on the line from the initial to the final weights (mean ± std over seeds)")
    return fig


VIEW_FIGURES = (
    ("landscape_surface", surface_figure,
     "Filter-normalized loss surface at the end of training (first seed; the same random directions for "
     "every arm, each filter scaled to its own weights' norm; BN parameters and biases left out). Evidence "
     "beside C4, not judged."),
    ("landscape_interpolation", interpolation_figure,
     "Loss on the straight line from the initial (t = 0) to the final (t = 1) weights (Goodfellow et al. "
     "2015), on the surface's batch. Evidence beside C4, not judged."),
    ("hessian_density", density_figure,
     "Hessian eigenvalue density by stochastic Lanczos quadrature (Gaussian-broadened, integral 1), "
     "log scale. Evidence beside C4, not judged."),
    ("hessian_trace", trace_figure,
     "Hessian trace (Hutchinson) and largest eigenvalue over training, mean ± std over seeds. Evidence "
     "beside C4, not judged."),
)


def view_figures(result: CommandResult, colors: dict[str, str]) -> list[tuple[str, Any, str]]:
    """(plot name, figure, caption) for each view the result holds."""
    if not any(r.probes.get(PROBE) for r in result.runs):
        return []
    out = []
    for name, fn, caption in VIEW_FIGURES:
        try:
            fig = fn(result, colors)
        except (KeyError, IndexError, TypeError, ValueError):  # a saved series of an unexpected shape
            fig = None
        if fig is not None:
            out.append((name, fig, caption))
    return out
