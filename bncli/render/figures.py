"""The report's figure for each claim, drawn from a saved result's series (no training): each
function takes a CommandResult and returns a matplotlib Figure (or None when the result holds no
data for it), appending a line to `notes` for every series it had to skip."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bncli.render import figstyle as fs
from bncli.results import CommandResult

FigureFn = Callable[..., Any]


def verdict_line(result: CommandResult, claim: str) -> str:
    """'supported at η=0.5 (batchnorm); refuted at η=2 (batchnorm)', or 'no verdict'."""
    parts = [f"{c.verdict} at {fs.lr_label(c.lr)} ({c.arm})" for c in result.claims if c.claim == claim]
    return "; ".join(parts) if parts else "no verdict"


def statement(result: CommandResult, claim: str, default: str) -> str:
    return next((c.statement for c in result.claims if c.claim == claim), default)


def title(fig: Any, result: CommandResult, claim: str, default: str, legend_skip: tuple[Any, ...] = ()) -> None:
    """The claim as the title (its verdicts go in the caption: caption()), the figure's one
    legend, and its layout."""
    fs.finish(fig, f"{claim}: {default}", legend_skip)  # short: the full statement heads the report's section


def caption(result: CommandResult, claim: str) -> str:
    """What a figure shows, then the verdicts it illustrates."""
    return f"{caption_text(claim)} Verdict: {verdict_line(result, claim)}.".strip()


# ------------------------------------------------------------------ C1 training curves


def _masked(r: Any, values: list[Any]) -> list[float]:
    """A run's values, NaN from its divergence step on (the mean over seeds must not mix them in)."""
    d = r.diverged_at
    return [math.nan if d is not None and s >= d else fs.num(v) for s, v in zip(r.steps, values, strict=False)]


def c1_figure(result: CommandResult, colors: dict[str, str] | None = None,
              notes: list[str] | None = None) -> Any:
    """Train loss (log) and held-out accuracy / MSE against steps, one column per learning rate;
    mean over seeds with a ±1 std band; ✕ where a seed diverged."""
    notes = notes if notes is not None else []
    lrs, arms = fs.result_lrs(result), fs.result_arms(result)
    if not lrs:
        return None
    colors = colors or fs.arm_colors(arms)
    classification = result.task == "classification"
    with fs.style() as plt:
        grid = fs.QuantityGrid(plt, 2, len(lrs), 3.6, 2.2)
        fig = grid.fig
        for j, lr in enumerate(lrs):
            ax_l, ax_a = grid.ax(0, j), grid.ax(1, j)
            drawn_l: list[float] = []
            drawn_a: list[float] = []
            for arm in arms:
                rs = fs.runs_of(result, arm, lr)
                if not rs:
                    continue
                ndiv = sum(r.diverged for r in rs)
                label = fs.arm_label(arm, lr, lrs) + (f" (✕ diverged {ndiv}/{len(rs)})" if ndiv else "")
                xs, m, s = fs.mean_std_over([(r.steps, _masked(r, r.train_loss)) for r in rs])
                if fs.positive(m):
                    fs.band(ax_l, xs, m, s, colors[arm], label, log=True)
                    drawn_l += m
                else:
                    notes.append(f"{arm}, {fs.lr_label(lr)}: train loss not finite at any evaluation: not drawn")
                    ax_l.plot([], [], color=colors[arm], label=label)
                held = [r.test_acc if classification else r.test_loss for r in rs]
                xs, m, s = fs.mean_std_over([(r.steps, _masked(r, h)) for r, h in zip(rs, held, strict=True)])
                if fs.has_finite(m):
                    fs.band(ax_a, xs, m, s, colors[arm], label, log=not classification)
                    drawn_a += m
                for r in rs:
                    if r.diverged_at is None:
                        continue
                    before = [v for st, v in zip(r.steps, r.train_loss, strict=False)
                              if st < r.diverged_at and fs.num(v) > 0]
                    if before:
                        ax_l.plot([r.diverged_at], [before[-1]], "X", color=colors[arm], ms=8, mec="white")
                    else:  # diverged before any finite evaluation: mark it at the top of the panel
                        ax_l.plot([r.diverged_at], [0.95], "X", color=colors[arm], ms=8, mec="white",
                                  transform=ax_l.get_xaxis_transform())
            if fs.positive(drawn_l):
                ax_l.set_yscale("log")
            else:
                fs.no_data(ax_l, "train loss: no finite values")
            if not classification:
                fs.log_if_possible(ax_a, drawn_a)
            if not fs.has_finite(drawn_a):
                fs.no_data(ax_a)
            ax_l.set_title(f"learning rate {fs.lr_label(lr)}")
            if grid.bottom(0):
                ax_l.set_xlabel("training step")
            ax_l.set_ylabel("train loss (log)")
            ax_a.set_ylabel("held-out accuracy (fraction)" if classification else "held-out MSE (log)")
            ax_a.set_xlabel("training step")
        title(fig, result, "C1", "BN speeds training and tolerates larger learning rates")
    return fig


# ------------------------------------------------------------------ C2 percentile bands, W1


def _w1_over_layers(r: Any) -> tuple[list[Any], list[float]]:
    """Per step, the mean over layers of the nonlinearity input's 1-Wasserstein shift."""
    p = r.probes.get("ics_dist", {})
    steps = p.get("steps", [])
    per = [p.get("per_layer", {}).get(n, {}).get("preact", {}).get("w1", []) for n in p.get("layers", [])]
    out = []
    for i in range(len(steps)):
        vals = [fs.num(s[i]) for s in per if i < len(s)]
        vals = [v for v in vals if not math.isnan(v)]
        out.append(sum(vals) / len(vals) if vals else math.nan)
    return steps, out


def _unit_series(pct: dict[str, Any], key: str, u: int) -> list[float]:
    series = pct.get(key, [])
    return [fs.num(v) for v in series[u]] if u < len(series) else []


def c2_figure(result: CommandResult, colors: dict[str, str] | None = None,
              notes: list[str] | None = None, max_layers: int = 3) -> Any:
    """Ioffe Fig 1b–c: 15/50/85th percentiles of tracked units' nonlinearity input over steps, one
    row per (learning rate, arm), one column per layer (first seed); beside each learning rate's
    rows, the 1-Wasserstein shift per step (mean over layers) of every arm."""
    notes = notes if notes is not None else []
    lrs, arms = fs.result_lrs(result), fs.result_arms(result)
    colors = colors or fs.arm_colors(arms)
    rows = [(lr, arm, min(rs, key=lambda r: r.seed)) for lr in lrs for arm in arms
            if (rs := [r for r in fs.runs_of(result, arm, lr, "ics_dist") if r.probes["ics_dist"].get("steps")])]
    if not rows:
        return None
    fit = fs.fit_columns()
    stacked = fit < 2  # one column: the W1 panels go under the percentile panels
    layers = fs.spread_pick(rows[0][2].probes["ics_dist"].get("layers", []),
                            1 if stacked else min(max_layers, fit - 1))
    if not layers:
        return None
    with fs.style() as plt:
        if stacked:
            fig, gs = fs.new_figure(plt, len(rows) + len(lrs), 1, 2.6, 1.55, grid=True)
        else:
            fig, gs = fs.new_figure(plt, len(rows), len(layers) + 1, 2.6, 1.55, grid=True)
        pct_axes: list[Any] = []  # their unit legend stays inside the first panel
        for i, (lr, arm, r) in enumerate(rows):
            p = r.probes["ics_dist"]
            for j, layer in enumerate(layers):
                ax = fig.add_subplot(gs[i, j])
                site = p.get("per_layer", {}).get(layer, {}).get("preact", {})
                pct = site.get("percentiles", {})
                units = p.get("tracked_units", {}).get(layer, [])
                drawn = False
                unit_colors = fs.series_colors(colors.values(), base=fs.UNIT_COLORS)  # never an arm's colour
                for u, unit in enumerate(units[:min(len(fs.UNIT_COLORS), len(unit_colors))]):
                    lo, mid, hi = (_unit_series(pct, k, u) for k in ("p15", "p50", "p85"))
                    if not fs.has_finite(mid):
                        continue
                    c = unit_colors[u]
                    ax.fill_between(p["steps"][:len(lo)], lo, hi, color=c, alpha=0.2, lw=0)
                    ax.plot(p["steps"][:len(mid)], mid, color=c, label=f"unit {unit}")
                    drawn = True
                if not drawn:
                    fs.no_data(ax)
                    notes.append(f"{arm}, {fs.lr_label(lr)}, {layer}: no finite percentiles")
                ax.set_title(f"{arm}, {fs.lr_label(lr)} · {layer}", color=colors[arm])
                if j == 0:
                    ax.set_ylabel("activation input")
                if i == len(rows) - 1 and not stacked:
                    ax.set_xlabel("training step")
                pct_axes.append(ax)
                if i == 0 and j == 0:
                    ax.legend(loc="upper left", fontsize=7)
        # the W1 column: one axis per learning rate, spanning that learning rate's rows
        for k, lr in enumerate(lrs):
            idx = [i for i, row in enumerate(rows) if row[0] == lr]
            if not idx:
                continue
            ax = fig.add_subplot(gs[len(rows) + k, 0] if stacked else gs[idx[0]: idx[-1] + 1, len(layers)])
            vals: list[float] = []
            for arm in arms:
                rs = fs.runs_of(result, arm, lr, "ics_dist")
                xs, m, s = fs.mean_std_over([_w1_over_layers(r) for r in rs]) if rs else ([], [], [])
                if fs.has_finite(m):
                    fs.band(ax, xs, m, s, colors[arm], fs.arm_label(arm, lr, lrs), log=True, marker=".")
                    vals += m
            if not fs.log_if_possible(ax, vals) and not fs.has_finite(vals):
                fs.no_data(ax)
            ax.set_title(f"W1 shift per step, {fs.lr_label(lr)}")
            ax.set_ylabel("W1 / step (layer mean)")
            ax.set_xlabel("training step")
        title(fig, result, "C2", "BN keeps each layer's input distribution stable", legend_skip=tuple(pct_axes))
    return fig


# ------------------------------------------------------------------ C3 gradient ICS


def c3_figure(result: CommandResult, colors: dict[str, str] | None = None,
              notes: list[str] | None = None, max_layers: int = 4) -> Any:
    """Santurkar Fig 3: ‖G − G′‖ (log) and cos(G, G′) per layer over steps; mean over seeds ± std."""
    from bncli.analyses.ics import c3_layers

    notes = notes if notes is not None else []
    lrs, arms = fs.result_lrs(result), fs.result_arms(result)
    colors = colors or fs.arm_colors(arms)
    first = next((r for r in result.runs if r.probes.get("ics_grad", {}).get("steps")), None)
    if first is None:
        return None
    layers = fs.spread_pick(c3_layers(first.probes["ics_grad"]), max_layers)
    if not layers:
        notes.append("C3 needs at least two measured layers (layer 1 has no earlier layers)")
        return None
    metrics = [("diff_norm", "‖G − G′‖", True), ("cos", "cos(G, G′)", False)]
    with fs.style() as plt:
        fig, axes = fs.new_figure(plt, len(metrics) * len(lrs), len(layers), 3.0, 1.8, sharex=True)
        for k, lr in enumerate(lrs):
            for i, (key, label, log) in enumerate(metrics):
                row = k * len(metrics) + i
                for j, layer in enumerate(layers):
                    ax = axes[row][j]
                    vals: list[float] = []
                    for arm in arms:
                        rs = fs.runs_of(result, arm, lr, "ics_grad")
                        series = [(r.probes["ics_grad"]["steps"],
                                   r.probes["ics_grad"].get("per_layer", {}).get(layer, {}).get(key, []))
                                  for r in rs]
                        xs, m, s = fs.mean_std_over(series) if series else ([], [], [])
                        if fs.has_finite(m):
                            fs.band(ax, xs, m, s, colors[arm], fs.arm_label(arm, lr, lrs), log=log, marker=".")
                            vals += m
                    if not fs.has_finite(vals):
                        fs.no_data(ax)
                    elif log:
                        fs.log_if_possible(ax, vals)
                    if row == 0:
                        ax.set_title(layer)
                    if j == 0:
                        ax.set_ylabel(f"{label}, {fs.lr_label(lr)}")
                    if row == len(metrics) * len(lrs) - 1:
                        ax.set_xlabel("training step")
        title(fig, result, "C3", "BN does not reduce gradient ICS")
    return fig


def figure_for(claim: str) -> FigureFn | None:
    """The figure function of a claim id, from its registry entry (C9 is drawn across documents:
    see figures_more.c9_figure)."""
    import bncli.analyses  # noqa: F401  (fills the claim registry)
    from bncli.claims import figure_fn

    return figure_fn(claim)


def caption_text(claim: str) -> str:
    """A claim's caption, from its registry entry."""
    import bncli.analyses  # noqa: F401  (fills the claim registry)
    from bncli.claims import caption_of

    return caption_of(claim)
