"""Rendering for `bncli lipschitz` (C4, C5): landscape table, BN Jacobian table, Fig 4 plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from bncli.render.common import arm_colors, claims_block, fmt, log_scale, pyplot, save_figure
from bncli.results import CommandResult, RunRecord
from bncli.spec import Spec


def landscape_table(spec: Spec, rows: Sequence[dict[str, Any]]) -> Table:
    """Rows = learning rate x arm; each cell is mean | max over measurement steps (seeds pooled)."""
    cfg = spec.analysis.lipschitz
    lo, hi = cfg.eta_range
    t = Table(
        title=f"{spec.name}: landscape along -g (C4), eta' = {cfg.eta_points} points in "
        f"[{lo:g}, {hi:g}] x lr, BN in {cfg.bn_mode} mode; cells: mean | max over steps",
        title_justify="left",
    )
    t.add_column("lr", justify="right")
    t.add_column("arm")
    t.add_column("steps measured", justify="right")
    t.add_column("loss variation (max-min L)", justify="right")
    t.add_column("grad. predictiveness (max over η′ ‖g−g′‖)", justify="right")
    t.add_column("(mean over η′)", justify="right")
    t.add_column("effective beta (‖g−g′‖/‖η′g‖)", justify="right")
    t.add_column("‖g‖", justify="right")
    if cfg.hessian:
        t.add_column("λ_max (sharpness)", justify="right")
        t.add_column("λ_min", justify="right")
    for r in rows:
        cells = [fmt(r["lr"]), r["arm"], f"{int(r['n_steps'])}"]
        for key in ("loss_variation", "grad_pred_max", "grad_pred_mean", "beta", "grad_norm"):
            cells.append(f"{fmt(r[f'{key}_mean'])} | {fmt(r[f'{key}_max'])}")
        if cfg.hessian:
            cells.append(f"{fmt(r['lambda_max_mean'])} | {fmt(r['lambda_max_max'])}")
            cells.append(f"{fmt(r['lambda_min_mean'])} | {fmt(r['lambda_min_max'])}")
            if r.get("hessian_unconverged"):
                cells[-1] += f" [yellow]({int(r['hessian_unconverged'])} not converged)[/yellow]"
        if r.get("n_diverged"):
            cells[1] += " [red](diverged)[/red]"
        t.add_row(*cells)
    return t


def jacobian_table(spec: Spec, rows: Sequence[dict[str, Any]]) -> Table:
    """Rows = learning rate x BN arm x layer: the C5 checks (worst over steps and seeds)."""
    tol = spec.analysis.lipschitz.jacobian_tol
    t = Table(
        title=f"BN Jacobian check (C5) per layer: errors are max |autograd - closed form| / "
        f"max |closed form| (worst over steps, seeds; tolerance {tol:g}); closed forms in float64",
        title_justify="left",
    )
    for col in ("lr", "arm", "layer", "m (values per unit)", "Jacobian err float32 | float64",
                "dL/dx err float32", "max |cos(dL/dx, .)| with 1 | y^",
                "Thm 4.1 ||dL/dx||^2 | RHS (max unit gap)", "||dL/dx|| / ||g|| (mean gamma/sigma)"):
        t.add_column(col, justify="left" if col in ("arm", "layer") else "right")
    for r in rows:
        bad = max(r["jacobian_err_f32"], r["grad_err"]) >= tol
        err = (lambda v: f"[red]{fmt(v)}[/red]") if bad else fmt
        m = f"{int(r['m'])}"
        if r["rows_checked"] < r["m"]:
            m += f" ({int(r['rows_checked'])} rows)"
        t.add_row(
            fmt(r["lr"]), r["arm"], r["layer"], m,
            f"{err(r['jacobian_err_f32'])} | {fmt(r['jacobian_err_f64'])}", err(r["grad_err"]),
            f"{fmt(r['cos_ones_max'])} | {fmt(r['cos_yhat_max'])}",
            f"{fmt(r['thm41_lhs'])} | {fmt(r['thm41_rhs'])} ({fmt(r['thm41_gap_max'])})",
            f"{fmt(r['grad_ratio'])} ({fmt(r['gamma_over_sigma'])})",
        )
    return t


def render_lipschitz(spec: Spec, result: CommandResult, detail: bool = False) -> list[Any]:
    """Everything `bncli lipschitz` prints: landscape table, Jacobian table, claims."""
    from bncli.render.norms import c9_lines

    land = result.tables.get("landscape", [])
    out: list[Any] = [landscape_table(spec, land)]
    if any(math.isinf(v) for r in land for k, v in r.items() if isinstance(v, float)):
        out.append("inf: a measurement hit a non-finite loss or gradient on the eta' grid (the "
                   "landscape blew up); it is not dropped, and C4 counts it against that arm")
    jac = result.tables.get("jacobian", [])
    if jac:
        out.append(jacobian_table(spec, jac))
        out.append("cos(dL/dx, y^) and the Thm 4.1 gap are not exactly 0: with eps in sigma, "
                   "||y^||^2 = m var/(var+eps) < m, so the projection is not exact")
    out.append(claims_block(result, "C4: is the landscape smoother with BN? "
                            "C5: does BN's backward pass match its closed form?"
                            + (" C9: ℓp smoother without stable distributions?"
                               if any(c.claim == "C9" for c in result.claims) else ""),
                            missing="the spec needs a BN arm (and a plain arm for C4)"))
    out += c9_lines(result)
    return out


def _band(records: Sequence[RunRecord], lo_key: str, hi_key: str):
    """Steps and the min/max band over seeds of per-step [lo, hi] ranges."""
    by_step: dict[int, list[float]] = {}
    for r in records:
        for s in r.probes.get("landscape", {}).get("series", []):
            vals = [s[lo_key], s[hi_key]]
            if all(math.isfinite(v) for v in vals):
                by_step.setdefault(s["step"], []).extend(vals)
    steps = sorted(by_step)
    return steps, [min(by_step[k]) for k in steps], [max(by_step[k]) for k in steps]


def plot_landscape(spec: Spec, records: Sequence[RunRecord], path: Path) -> Path:
    """Santurkar Fig 4: loss range, gradient predictiveness range, effective beta; band per arm."""
    plt = pyplot()
    lrs = spec.train.lr
    arms = [a.name for a in spec.arms]
    colors = arm_colors(arms)
    panels = [("loss_min", "loss_max", "loss L(theta - eta' g) over the grid"),
              ("grad_pred_min", "grad_pred_max", "gradient predictiveness ||g - g'||"),
              ("beta", "beta", "effective beta-smoothness")]
    fig, axes = plt.subplots(len(panels), len(lrs), figsize=(4.4 * len(lrs), 9), squeeze=False)
    for j, lr in enumerate(lrs):
        for i, (lo, hi, label) in enumerate(panels):
            ax = axes[i][j]
            spans: list[float] = []
            for arm in arms:
                rs = [r for r in records if r.arm == arm and r.lr == lr]
                steps, low, high = _band(rs, lo, hi)
                if not steps:
                    continue
                ax.fill_between(steps, low, high, color=colors[arm], alpha=0.35, label=arm)
                ax.plot(steps, high, color=colors[arm], lw=0.8)
                spans += [v for v in low + high if v > 0]
            if spans and max(spans) / min(spans) > 10:
                log_scale(ax, "y")
            ax.set_ylabel(label, fontsize=8)
            if i == 0:
                ax.set_title(f"lr = {lr:g}")
                ax.legend(fontsize=8)
            if i == len(panels) - 1:
                ax.set_xlabel("step")
    fig.suptitle(f"{spec.name}: landscape along the gradient (bands: min-max over eta' and seeds)")
    return save_figure(fig, path)


def write_lipschitz_files(spec: Spec, result: CommandResult, out_dir: Path) -> list[Path]:
    return [plot_landscape(spec, result.runs, out_dir / "plots" / "landscape.png")]


render = render_lipschitz
write_files = write_lipschitz_files
