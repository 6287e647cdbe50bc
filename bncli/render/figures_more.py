"""The report's figures for C4–C9 (landscape, Jacobian, scale, saturation, γ/β, shift vs
smoothness), drawn from saved series like those in figures.py."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bncli.render import figstyle as fs
from bncli.render.figures import title
from bncli.results import CommandResult


def _proxy_kw(ls: str, label: str) -> dict[str, Any]:
    """An empty grey line whose only job is a legend entry explaining a line style."""
    return {"ls": ls, "color": "#555555", "label": label}


def _when_marker(when: str) -> dict[str, Any]:
    """Markers of the two moments drawn in one colour (initialization / first measurement: open,
    larger squares on a dashed line; end / last: small filled dots on a solid one): two curves
    that coincide stay visible, one through the other."""
    if when == "init":
        return {"marker": "s", "ms": 6, "mfc": "none", "mew": 1.0}
    return {"marker": "o", "ms": 3.5}


# ------------------------------------------------------------------ C4 landscape (Santurkar Fig 4)


def _landscape(r: Any, key: str) -> tuple[list[Any], list[Any]]:
    series = r.probes.get("landscape", {}).get("series", [])
    return [s.get("step") for s in series], [s.get(key) for s in series]


def c4_figure(result: CommandResult, colors: dict[str, str] | None = None,
              notes: list[str] | None = None) -> Any:
    """Loss range and gradient-predictiveness range over η′ (shaded) and effective β, against steps;
    one column per learning rate."""
    notes = notes if notes is not None else []
    lrs, arms = fs.result_lrs(result), fs.result_arms(result)
    colors = colors or fs.arm_colors(arms)
    if not any(r.probes.get("landscape", {}).get("series") for r in result.runs):
        return None
    panels = [("loss_min", "loss_max", "loss L(θ − η′g) over η′"),
              ("grad_pred_min", "grad_pred_max", "‖g − g′‖ over η′ (predictiveness)"),
              ("beta", None, "effective β-smoothness")]
    with fs.style() as plt:
        grid = fs.QuantityGrid(plt, len(panels), len(lrs), 3.6, 1.9)
        fig = grid.fig
        for j, lr in enumerate(lrs):
            for i, (lo_key, hi_key, label) in enumerate(panels):
                ax = grid.ax(i, j)
                vals: list[float] = []
                for arm in arms:
                    rs = fs.runs_of(result, arm, lr, "landscape")
                    if not rs:
                        continue
                    name = fs.arm_label(arm, lr, lrs)
                    xs, lo, _ = fs.mean_std_over([_landscape(r, lo_key) for r in rs])
                    if hi_key is None:
                        xs, m, s = xs, lo, _
                        if fs.has_finite(m):
                            fs.band(ax, xs, m, s, colors[arm], name, log=True, marker=".")
                            vals += m
                        else:
                            notes.append(f"{name}: effective β not finite at any step: not drawn")
                        continue
                    _, hi, _ = fs.mean_std_over([_landscape(r, hi_key) for r in rs])
                    ok = [k for k in range(len(xs)) if not (math.isnan(lo[k]) or math.isnan(hi[k]))]
                    if not ok:
                        notes.append(f"{name}: {label} not finite at any step (the landscape blew up): not drawn")
                        continue
                    xk = [xs[k] for k in ok]
                    ax.fill_between(xk, [lo[k] for k in ok], [hi[k] for k in ok], color=colors[arm],
                                    alpha=0.3, lw=0, label=name)
                    ax.plot(xk, [hi[k] for k in ok], color=colors[arm], lw=0.8)
                    ax.plot(xk, [lo[k] for k in ok], color=colors[arm], lw=0.8)
                    vals += [lo[k] for k in ok] + [hi[k] for k in ok]
                if not fs.has_finite(vals):
                    fs.no_data(ax)
                else:
                    fs.log_if_possible(ax, vals, spread=10 if hi_key else 0)
                if grid.top(i):
                    ax.set_title(f"learning rate {fs.lr_label(lr)}")
                ax.set_ylabel(label)
                if grid.bottom(i):
                    ax.set_xlabel("training step")
        title(fig, result, "C4", "BN smooths the loss landscape")
    return fig


# ------------------------------------------------------------------ C5 Jacobian check


def c5_figure(result: CommandResult, colors: dict[str, str] | None = None,
              notes: list[str] | None = None) -> Any:
    """Worst relative error over layers of autograd vs BN's closed forms, against steps."""
    notes = notes if notes is not None else []
    lrs, arms = fs.result_lrs(result), fs.result_arms(result)
    colors = colors or fs.arm_colors(arms)
    if not any(r.probes.get("bn_jacobian", {}).get("series") for r in result.runs):
        return None
    tol = fs.num(result.spec.get("analysis", {}).get("lipschitz", {}).get("jacobian_tol"))
    panels = [("jacobian_err_f32", "Jacobian error (float32, rel.)"),
              ("grad_err", "backward dL/dx error (float32, rel.)")]
    styles = ["-", "--", ":", "-."]
    with fs.style() as plt:
        fig, axes = fs.new_figure(plt, 1, len(panels), 4.2, 2.6)
        for ax, (key, label) in zip(axes[0], panels, strict=True):
            vals: list[float] = []
            for k, lr in enumerate(lrs):
                for arm in arms:
                    by: dict[float, float] = {}
                    for r in fs.runs_of(result, arm, lr, "bn_jacobian"):
                        for s in r.probes["bn_jacobian"].get("series", []):
                            errs = [fs.num(v.get(key)) for v in s.get("layers", {}).values()]
                            errs = [e if not math.isnan(e) else math.inf for e in errs]  # non-finite: a failure
                            if errs:
                                by[s["step"]] = max(by.get(s["step"], 0.0), max(errs))
                    if not by:
                        continue
                    xs = sorted(by)
                    ys = [by[x] for x in xs]
                    if any(math.isinf(y) for y in ys):
                        notes.append(f"{arm}, {fs.lr_label(lr)}: non-finite {label} at some step (drawn as a gap)")
                    ys = [y if math.isfinite(y) and y > 0 else math.nan for y in ys]
                    ax.plot(xs, ys, styles[k % len(styles)], marker=fs.MARKERS[k % len(fs.MARKERS)],
                            color=colors[arm], label=f"{arm}, {fs.lr_label(lr)}")
                    vals += ys
            if not math.isnan(tol):
                ax.axhline(tol, color="#555555", ls=":", lw=1, label=f"tolerance {tol:g}")
                vals.append(tol)
            if not fs.log_if_possible(ax, vals):
                fs.no_data(ax)
            ax.set_ylabel(label)
            ax.set_xlabel("training step")
        title(fig, result, "C5", "BN's backward pass matches its closed form")
    return fig


# ------------------------------------------------------------------ C6 scale invariance


def _norm_series(r: Any, layer: str) -> tuple[list[Any], list[Any]]:
    pr = r.probes.get("scale", {})
    steps, norm = list(pr.get("steps", [])), list(pr.get("series", {}).get(layer, {}).get("norm", []))
    final = pr.get("final_norm", {})
    if layer in final and (not steps or r.steps_done > steps[-1]):
        steps.append(r.steps_done)
        norm.append(final[layer])
    return steps, norm


def c6_figure(result: CommandResult, colors: dict[str, str] | None = None,
              notes: list[str] | None = None) -> Any:
    """Relative output change against α (log-log), and ‖Wᵢ‖ over steps; one row per learning rate."""
    notes = notes if notes is not None else []
    lrs, arms = fs.result_lrs(result), fs.result_arms(result)
    colors = colors or fs.arm_colors(arms)
    sc = result.tables.get("scale", {})
    static = sc.get("static", []) if isinstance(sc, dict) else []
    if not static and not any(r.probes.get("scale") for r in result.runs):
        return None
    floor = 1e-9  # an exact zero cannot go on a log axis
    n_norm = max([len([a for a in arms if fs.runs_of(result, a, lr, "scale")]) for lr in lrs] + [1])
    with fs.style() as plt:
        fig, axes = fs.new_figure(plt, len(lrs), 1 + n_norm, 3.4, 2.4)
        for i, lr in enumerate(lrs):
            ax_s = axes[i][0]
            floored = False
            vals: list[float] = []
            for arm in arms:
                # the end first (its line is the arm's legend entry); at init: dashed, open and larger
                # markers, so a curve lying on the other stays visible
                for when, ls in (("end", "-"), ("init", "--")):
                    rs = sorted((r for r in static if r.get("arm") == arm and r.get("lr") == lr
                                 and r.get("when") == when), key=lambda r: fs.num(r.get("alpha")))
                    pts = [(fs.num(r.get("alpha")), fs.num(r.get("out_rel"))) for r in rs]
                    pts = [(a, v) for a, v in pts if not (math.isnan(a) or math.isnan(v))]
                    if not pts:
                        continue
                    floored |= any(v < floor for _, v in pts)
                    ys = [max(v, floor) for _, v in pts]
                    ax_s.plot([a for a, _ in pts], ys, ls, color=colors[arm], **_when_marker(when),
                              label=fs.arm_label(arm, lr, lrs) if when == "end" else None)
                    vals += ys
            tol = fs.num(sc.get("tolerance")) if isinstance(sc, dict) else math.nan
            if not math.isnan(tol) and vals:
                ax_s.axhline(tol, color="#555555", ls=":", lw=1, label=f"tolerance {tol:g}")
            if vals:
                ax_s.set_xscale("log")
                ax_s.set_yscale("log")
            else:
                fs.no_data(ax_s, "no static check")
            ax_s.set_xlabel("α (Wᵢ ← α·Wᵢ)")
            ax_s.set_ylabel("rel. output change (worst layer)" + (f"; <{floor:g} drawn at it" if floored else ""))
            ax_s.set_title(f"scale check, {fs.lr_label(lr)}")
            ax_s.plot([], [], **_proxy_kw("--", "at initialization"), **_when_marker("init"))
            ax_s.plot([], [], **_proxy_kw("-", "at the end of training"), **_when_marker("end"))
            norm_arms = [a for a in arms if fs.runs_of(result, a, lr, "scale")]
            for a_i, arm in enumerate(norm_arms[:len(axes[i]) - 1]):
                ax_n = axes[i][1 + a_i]
                rs = fs.runs_of(result, arm, lr, "scale")
                # the layers share the figure's legend with the arms: colours no arm of the report has
                layer_colors = fs.series_colors(colors.values())
                layers = fs.spread_pick(rs[0].probes["scale"].get("layers", []), min(6, len(layer_colors)))
                div = [r.diverged_at for r in rs if r.diverged_at is not None]
                nvals: list[float] = []
                for k, layer in enumerate(layers):
                    xs, m, _ = fs.mean_std_over([_norm_series(r, layer) for r in rs])
                    if not fs.has_finite(m):
                        notes.append(f"{arm}, {fs.lr_label(lr)}, {layer}: ‖W‖ not finite: not drawn")
                        continue
                    m0 = next((v for v in m if not math.isnan(v) and v > 0), math.nan)
                    rel = [v / m0 for v in m]
                    color = layer_colors[k]
                    ax_n.plot(xs, rel, color=color, label=layer, marker=fs.MARKERS[(k + 2) % len(fs.MARKERS)],
                              markevery=max(1, len(xs) // 6), ms=3)
                    last = [v for x, v in zip(xs, rel, strict=True) if not math.isnan(v) and (not div or x < min(div))]
                    if div and last:
                        ax_n.plot([min(div)], [last[-1]], "X", color=color, ms=8, mec="white")
                    nvals += rel
                if not fs.has_finite(nvals):
                    fs.no_data(ax_n)
                else:
                    fs.log_if_possible(ax_n, nvals, spread=20)
                ax_n.set_xlabel("training step")
                if a_i == 0:
                    ax_n.set_ylabel("‖Wᵢ‖ / ‖Wᵢ‖ at first step")
                ax_n.set_title(f"‖Wᵢ‖, {arm}, {fs.lr_label(lr)}" + (f" (✕ diverged at {min(div)})" if div else ""),
                               color=colors[arm])
            for ax in axes[i][1 + len(norm_arms):]:
                fs.no_data(ax, "no weight norms measured")
        title(fig, result, "C6", "Scale invariance: BN(αWx) = BN(Wx)")
    return fig


# ------------------------------------------------------------------ C7 saturation, C8 γ and β


def _sat_metric(result: CommandResult) -> tuple[str, str]:
    for key, label in (("dead", "dead units (%)"), ("saturated", "saturated units (%)")):
        if any(key in pl for r in result.runs for pl in r.probes.get("saturation", {}).get("per_layer", {}).values()):
            return key, label
    return "linear", "pre-activations with |x| ≤ bound (%)"


def _layer_mean(r: Any, layer: str, key: str) -> float:
    vals = [fs.num(v) for v in r.probes["saturation"].get("per_layer", {}).get(layer, {}).get(key, [])]
    vals = [v for v in vals if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _mean_sd(vals: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    return m, ((sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0)


def c7_figure(result: CommandResult, colors: dict[str, str] | None = None,
              notes: list[str] | None = None) -> Any:
    """Saturated / dead fraction by layer, and gradient norm by depth; one row per learning rate."""
    notes = notes if notes is not None else []
    lrs, arms = fs.result_lrs(result), fs.result_arms(result)
    colors = colors or fs.arm_colors(arms)
    if not any(r.probes.get("saturation", {}).get("steps") for r in result.runs):
        return None
    key, label = _sat_metric(result)
    with fs.style() as plt:
        fig, axes = fs.new_figure(plt, len(lrs), 2, 4.0, 2.5)
        for i, lr in enumerate(lrs):
            ax_f, ax_g = axes[i]
            fvals: list[float] = []
            gvals: list[float] = []
            n_layers = 0
            shown = [a for a in arms if any(r.probes["saturation"].get("steps")
                                            for r in fs.runs_of(result, a, lr, "saturation"))]
            for a_i, arm in enumerate(shown):
                rs = [r for r in fs.runs_of(result, arm, lr, "saturation") if r.probes["saturation"].get("steps")]
                layers = rs[0].probes["saturation"].get("layers", [])
                n_layers = max(n_layers, len(layers))
                # each arm nudged sideways: arms with the same values (0 % saturated) stay visible side by side
                dodge = 0.07 * (a_i - (len(shown) - 1) / 2)
                depth = [k + 1 + dodge for k in range(len(layers))]
                ms = [_mean_sd([100 * _layer_mean(r, n, key) for r in rs]) for n in layers]
                if fs.has_finite([m for m, _ in ms]):
                    ax_f.errorbar(depth, [m for m, _ in ms], yerr=[s for _, s in ms], marker="o",
                                  color=colors[arm], capsize=2, label=fs.arm_label(arm, lr, lrs))
                    fvals += [m for m, _ in ms]
                for k, ls, when in ((-1, "-", "end"), (0, "--", "init")):  # the last measurement labels the arm
                    g = [_mean_sd([fs.num(_at(r, n, "grad_norm", k)) for r in rs])[0] for n in layers]
                    g = [v if v > 0 else math.nan for v in g]
                    if fs.has_finite(g):
                        ax_g.plot(depth, g, ls, color=colors[arm], **_when_marker(when),
                                  label=fs.arm_label(arm, lr, lrs) if when == "end" else None)
                        gvals += g
                    else:
                        notes.append(f"{arm}, {fs.lr_label(lr)}: gradient norms not finite: not drawn")
            for ax, vals in ((ax_f, fvals), (ax_g, gvals)):
                if not fs.has_finite(vals):
                    fs.no_data(ax)
                ax.set_xlabel("layer (1 = next to the input)")
                if n_layers:
                    ax.set_xticks(range(1, n_layers + 1, max(1, n_layers // 8)))
            fs.log_if_possible(ax_g, gvals)
            ax_g.plot([], [], **_proxy_kw("--", "first measurement"), **_when_marker("init"))
            ax_g.plot([], [], **_proxy_kw("-", "last measurement"), **_when_marker("end"))
            ax_f.set_ylabel(label)
            ax_f.set_title(f"{label.split(' (')[0]} by layer, {fs.lr_label(lr)}")
            ax_g.set_ylabel("‖∇Wᵢ L‖₂")
            ax_g.set_title(f"gradient norm by depth, {fs.lr_label(lr)}")
        title(fig, result, "C7", "BN keeps units out of saturation and gradients alive")
    return fig


def _at(r: Any, layer: str, key: str, k: int) -> Any:
    s = r.probes["saturation"].get("per_layer", {}).get(layer, {}).get(key, [])
    return s[k] if s else None


def c8_figure(result: CommandResult, colors: dict[str, str] | None = None,
              notes: list[str] | None = None) -> Any:
    """Mean γ and mean β per normalized layer over steps, for every arm that has them."""
    notes = notes if notes is not None else []
    lrs, arms = fs.result_lrs(result), fs.result_arms(result)
    colors = colors or fs.arm_colors(arms)

    def affine(r: Any) -> bool:
        return any("gamma_mean" in pl for pl in r.probes.get("saturation", {}).get("per_layer", {}).values())

    if not any(affine(r) for r in result.runs):
        notes.append("no arm with γ and β (affine normalization) was measured")
        return None
    with fs.style() as plt:
        fig, axes = fs.new_figure(plt, len(lrs), 2, 4.0, 2.3, sharex=True)
        for i, lr in enumerate(lrs):
            for ax, key, label in ((axes[i][0], "gamma_mean", "γ, mean over units"),
                                   (axes[i][1], "beta_mean", "β, mean over units")):
                drawn = False
                shown: set[str] = set()
                for a_i, arm in enumerate(arms):
                    rs = [r for r in fs.runs_of(result, arm, lr, "saturation") if affine(r)]
                    layer_colors = fs.series_colors(colors.values())  # no arm's colour (the report's other figures)
                    layers = fs.spread_pick(rs[0].probes["saturation"].get("layers", []) if rs else [],
                                            min(6, len(layer_colors)))
                    ls = fs.ARM_STYLES[a_i % len(fs.ARM_STYLES)]
                    if layers:
                        ax.plot([], [], ls=ls, color="#555555", label=fs.arm_label(arm, lr, lrs))
                    for k, layer in enumerate(layers):
                        xs, m, _ = fs.mean_std_over([(r.probes["saturation"]["steps"], r.probes["saturation"]
                                                      ["per_layer"].get(layer, {}).get(key, [])) for r in rs])
                        if not fs.has_finite(m):
                            continue
                        ax.plot(xs, m, ls=ls, color=layer_colors[k],
                                label=layer if layer not in shown else None)
                        shown.add(layer)
                        drawn = True
                if key == "beta_mean":
                    ax.axhline(0, color="#555555", lw=0.8)
                if key == "gamma_mean":
                    ax.axhline(1, color="#555555", lw=0.8, ls=":")
                if not drawn:
                    fs.no_data(ax)
                ax.set_ylabel(label)
                ax.set_title(f"{label.split(',')[0]} over training, {fs.lr_label(lr)}")
                if i == len(lrs) - 1:
                    ax.set_xlabel("training step")
        title(fig, result, "C8", "γ and β restore what normalization takes away")
    return fig


# ------------------------------------------------------------------ C9 shift vs smoothness


def c9_points(results: Sequence[CommandResult]) -> list[dict[str, Any]]:
    """(arm, lr) points with a C2 shift (mean W1 per step over layers, from measure-ics's table)
    and a C4 smoothness (effective β, from lipschitz's table) among `results` (one comparison)."""
    shift: dict[tuple[str, float], list[float]] = {}
    smooth: dict[tuple[str, float], float] = {}
    for res in results:
        rows = res.tables.get("ics_rows", {})
        for r in rows.get("distribution", []) if isinstance(rows, dict) else []:
            if r.get("site", "preact") == "preact" and isinstance(r.get("w1"), list):
                shift.setdefault((r["arm"], r["lr"]), []).append(fs.num(r["w1"][0]))
        for r in res.tables.get("landscape", []) or []:
            if isinstance(r, dict) and "arm" in r:
                smooth[(r["arm"], r["lr"])] = fs.num(r.get("beta_mean"))
    out = []
    for key, vals in shift.items():
        vals = [v for v in vals if not math.isnan(v)]
        if key in smooth and vals and not math.isnan(smooth[key]):
            out.append({"arm": key[0], "lr": key[1], "shift": sum(vals) / len(vals), "smooth": smooth[key]})
    return out


def c9_figure(points: Sequence[dict[str, Any]], colors: dict[str, str] | None = None,
              heading: str = "C9: other normalizations smooth the landscape without fixing distributions") -> Any:
    """Shift (x) against smoothness (y), one point per arm and learning rate (log-log)."""
    if not points:
        return None
    colors = colors or fs.arm_colors(p["arm"] for p in points)
    markers = "osD^v<>"
    lrs = list(dict.fromkeys(p["lr"] for p in points))
    with fs.style() as plt:
        fig, axes = fs.new_figure(plt, 1, 1, 4.5, 2.8)
        ax = axes[0][0]
        for p in points:
            m = markers[lrs.index(p["lr"]) % len(markers)]
            ax.plot([p["shift"]], [p["smooth"]], m, color=colors.get(p["arm"], "#000000"), ms=7,
                    label=f"{p['arm']}, {fs.lr_label(p['lr'])}")
            ax.annotate(p["arm"], (p["shift"], p["smooth"]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        fs.log_if_possible(ax, [p["smooth"] for p in points])
        if all(p["shift"] > 0 for p in points):
            ax.set_xscale("log")
        ax.set_xlabel("shift: W1 per step (C2)")
        ax.set_ylabel("effective β (C4; lower = smoother)")
        fs.finish(fig, heading)
    return fig
