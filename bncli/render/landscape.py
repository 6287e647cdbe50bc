"""Rendering for `bncli lipschitz` (C4, C5): landscape table, BN Jacobian table, Fig 4 plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from bncli.render import compact
from bncli.results import CommandResult
from bncli.spec import Spec


def landscape_table(spec: Spec, rows: Sequence[dict[str, Any]], detail: bool = True) -> Table:
    """Rows = learning rate x arm; each cell is the mean over measurement steps (seeds pooled),
    and with `detail` also the max ('mean | max') and the mean-over-η′ predictiveness."""
    cfg = spec.analysis.lipschitz
    lo, hi = cfg.eta_range
    t = compact.table(
        f"{spec.name}: landscape along −g (C4), η′ = {cfg.eta_points} points in [{lo:g}, {hi:g}]×lr, "
        f"BN in {cfg.bn_mode} mode; " + ("cells: mean | max over steps" if detail else "mean over steps"),
        caption="loss variation: max − min of L over η′; grad. predictiveness: max over η′ of "
                "‖g − g′‖" + (" (and its mean over η′)" if detail else "") + "; β-smoothness: "
                "‖g − g′‖/‖η′g‖ (effective); steps: measurements per run; seeds pooled. C4 compares each "
                "seed's median over steps (--detail).",
    )
    t.add_column("lr", justify="right", no_wrap=True)
    t.add_column("arm")
    t.add_column("steps", justify="right")
    t.add_column("loss variation", justify="right")
    t.add_column("grad. predictiveness", justify="right")
    keys = ["loss_variation", "grad_pred_max"]
    if detail:
        t.add_column("(mean over η′)", justify="right")
        keys.append("grad_pred_mean")
    t.add_column("β-smoothness", justify="right")
    t.add_column("‖g‖", justify="right")
    keys += ["beta", "grad_norm"]
    if cfg.hessian:
        t.add_column("λ_max (sharpness)", justify="right")
        t.add_column("λ_min", justify="right")

    def cell(key: str) -> str:
        return (f"{compact.num(r[f'{key}_mean'])} | {compact.num(r[f'{key}_max'])}" if detail
                else compact.num(r[f"{key}_mean"]))

    for r in rows:
        cells = [compact.num(r["lr"]), r["arm"], f"{int(r['n_steps'])}"]
        cells += [cell(key) for key in keys]
        if cfg.hessian:
            cells += [cell("lambda_max"), cell("lambda_min")]
            if r.get("hessian_unconverged"):
                cells[-1] += f" [yellow]({int(r['hessian_unconverged'])} not converged)[/yellow]"
        if r.get("n_diverged"):
            cells[1] += " [red](diverged)[/red]"
        t.add_row(*cells)
    return t


def jacobian_table(spec: Spec, rows: Sequence[dict[str, Any]]) -> Table:
    """Rows = learning rate x BN arm x layer: the C5 checks (worst over steps and seeds)."""
    tol = spec.analysis.lipschitz.jacobian_tol
    t = compact.table(
        f"BN Jacobian check (C5) per layer: errors are max |autograd − closed form| / "
        f"max |closed form| (worst over steps, seeds; tolerance {tol:g}); closed forms in float64",
    )
    for col in ("lr", "arm", "layer", "m (values per unit)", "Jacobian err float32 | float64",
                "∂L/∂x err float32", "max |cos(∂L/∂x, ·)| with 1 | ŷ",
                "Thm 4.1 ‖∂L/∂x‖² | RHS (max unit gap)", "‖∂L/∂x‖/‖g‖ (mean γ/σ)"):
        t.add_column(col, justify="left" if col in ("arm", "layer") else "right")
    for r in rows:
        bad = max(r["jacobian_err_f32"], r["grad_err"]) >= tol
        err = (lambda v: f"[red]{compact.num(v)}[/red]") if bad else compact.num
        m = f"{int(r['m'])}"
        if r["rows_checked"] < r["m"]:
            m += f" ({int(r['rows_checked'])} rows)"
        t.add_row(
            compact.num(r["lr"]), r["arm"], r["layer"], m,
            f"{err(r['jacobian_err_f32'])} | {compact.num(r['jacobian_err_f64'])}", err(r["grad_err"]),
            f"{compact.num(r['cos_ones_max'])} | {compact.num(r['cos_yhat_max'])}",
            f"{compact.num(r['thm41_lhs'])} | {compact.num(r['thm41_rhs'])} ({compact.num(r['thm41_gap_max'])})",
            f"{compact.num(r['grad_ratio'])} ({compact.num(r['gamma_over_sigma'])})",
        )
    return t


def render_lipschitz(spec: Spec, result: CommandResult, detail: bool = False) -> list[Any]:
    """What `bncli lipschitz` prints: the landscape table (means over steps) and the short claims
    table; with `detail` the maxima too, the per-layer BN Jacobian table and the claims' notes."""
    from bncli.render.norms import c9_lines

    land = result.tables.get("landscape", [])
    out: list[Any] = [landscape_table(spec, land, detail)]
    if any(math.isinf(v) for r in land for k, v in r.items() if isinstance(v, float)):
        out.append("inf: a measurement hit a non-finite loss or gradient on the η′ grid (the "
                   "landscape blew up); it is not dropped, and C4 counts it against that arm")
    jac = result.tables.get("jacobian", [])
    if jac and detail:
        out.append(jacobian_table(spec, jac))
        out.append("cos(∂L/∂x, ŷ) and the Thm 4.1 gap are not exactly 0: with ε in σ, "
                   "‖ŷ‖² = m·var/(var + ε) < m, so the projection is not exact")
    out.append(compact.claims_output(result, "C4: is the landscape smoother with BN? "
                            "C5: does BN's backward pass match its closed form?"
                            + (" C9: ℓp smoother without stable distributions?"
                               if any(c.claim == "C9" for c in result.claims) else ""),
                            detail, missing="the spec needs a BN arm (and a plain arm for C4)"))
    out += c9_lines(result)
    views = result.tables.get("views")
    if views:
        out.append(views_table(spec, views, result.runs))
        out.append(result.tables.get("views_note", ""))
    return out


def interpolation_barrier(record: Any) -> float | None:
    """The loss barrier on the line from the initial to the final weights (`report_views.barrier`,
    one definition for the terminal and the report). None without the interpolation or its ends."""
    from bncli.render.report_views import barrier

    it = record.probes.get("landscape_views", {}).get("interpolation") if record.probes else None
    if not it or not it.get("t"):
        return None
    b = barrier(list(it["t"]), [math.inf if v is None else float(v) for v in it["loss"]])
    return None if math.isnan(b) else b


def _barriers(runs: Sequence[Any]) -> dict[tuple[float, str], float]:
    """(lr, arm) -> the interpolation barrier's mean over the seeds that have it."""
    per: dict[tuple[float, str], list[float]] = {}
    for r in runs:
        b = interpolation_barrier(r)
        if b is not None:
            per.setdefault((r.lr, r.arm), []).append(b)
    return {k: sum(v) / len(v) for k, v in per.items()}


def views_table(spec: Spec, rows: Sequence[dict[str, Any]], runs: Sequence[Any] = ()) -> Table:
    """Rows = learning rate x arm: the opt-in landscape views (means over seeds), evidence only;
    with the surface's `interpolate`, the barrier on the line θ₀ → θ_end (from `runs`)."""
    cfg = spec.analysis.lipschitz
    t = compact.table(f"{spec.name}: landscape views beside C4 (evidence, not judged), BN in {cfg.bn_mode} mode")
    cols: list[tuple[str, str]] = [("lr", "lr"), ("arm", "arm")]
    if cfg.hessian_trace:
        cols += [("trace_end", "tr H (last step)"), ("trace_se_end", "± s.e."), ("trace_mean", "tr H (mean)")]
    if cfg.hessian_top_k and (cfg.hessian_trace or cfg.hessian_density):
        cols += [(f"lambda{i}_end", f"λ{i}") for i in range(1, min(cfg.hessian_top_k, 3) + 1)]
    if cfg.surface is not None:
        s = cfg.surface
        cols += [("surface_centre", "L(θ)"), ("surface_range", f"surface range (±{s.span:g}, {s.dims}-D)"),
                 ("surface_rise", "rise (max − L(θ))")]
    barriers = _barriers(runs)
    for _, label in cols:
        t.add_column(label, justify="left" if label == "arm" else "right")
    if barriers:
        t.add_column("line barrier θ₀→θ_end", justify="right")
        t.caption = ("line barrier: the largest rise of L above the chord between its values at the initial "
                     "and the final weights, on the line between them (0: no rise), mean over seeds")
    for r in rows:
        cells = [str(r["arm"]) if k == "arm" else compact.num(r.get(k, math.nan)) for k, _ in cols]
        if cfg.hessian_trace and r.get("trace_converged_end", 1.0) < 1.0:  # s.e. above tol·|tr| at the cap
            cells[3] += " [yellow](s.e. > tol)[/yellow]"
        if barriers:
            cells.append(compact.num(barriers.get((r["lr"], r["arm"]))))
        t.add_row(*cells)
    return t


render = render_lipschitz
