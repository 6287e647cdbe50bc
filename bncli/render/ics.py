"""Rendering for `bncli measure-ics` (C2, C3): per layer x arm tables and PNG plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from bncli.analyses.ics import c3_layers
from bncli.render import compact
from bncli.render.common import arm_colors, fmt, log_scale, pyplot, save_figure
from bncli.results import CommandResult, RunRecord
from bncli.spec import Spec
from bncli.stats import spread_indices

MAX_TABLE_LAYERS = 8  # more layers than this: the tables show an evenly spaced subset
MAX_PLOT_LAYERS = 4
SITE_LABEL = {"preact": "act in", "bn_in": "BN in", "preact_eval": "act in, eval"}
DIST_HEAD = {"d_mean": "|Δμ|/step*", "d_var": "|Δσ²|/step*", "w1": "W1/step", "d_pct": "pctl/step",
             "pct_drift": "pctl drift"}
GRAD_HEAD = {"g_norm": "‖G‖", "diff_norm": "‖G − G′‖", "rel_diff": "‖G − G′‖/‖G‖",
             "cos": "cos(G, G′)"}


def pick_layers(layers: Sequence[str], limit: int) -> list[str]:
    """All layers, or `limit` evenly spaced ones (first and last included) when there are more."""
    return [layers[i] for i in spread_indices(len(layers), limit)]


def _shown(spec: Spec, rows: Sequence[dict[str, Any]], limit: int) -> tuple[list[str], int]:
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    if spec.analysis.ics.layers:  # the user chose: show what they asked for
        return layers, len(layers)
    return pick_layers(layers, limit), len(layers)


def _mean_of(rows: Sequence[dict[str, Any]], key: str) -> float:
    vals = [r[key][0] for r in rows if r[key][0] is not None and math.isfinite(r[key][0])]
    return sum(vals) / len(vals) if vals else math.nan


def _by_arm(rows: Sequence[dict[str, Any]], lr: float) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["lr"] == lr:
            out.setdefault(r["arm"], []).append(r)
    return out


def dist_table(spec: Spec, rows: Sequence[dict[str, Any]], lr: float) -> Table:
    """C2 at one learning rate: per arm x layer x site, each shift metric's mean over steps."""
    cfg = spec.analysis.ics
    shown, _ = _shown(spec, rows, MAX_TABLE_LAYERS)
    t = Table(title=f"C2 at lr = {fmt(lr)}: layer-input distribution shift, fixed probe batch of "
                    f"{cfg.probe_size}, every {cfg.every} steps; mean over steps "
                    "(± std over seeds)",
              title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("arm", "layer", "site", *DIST_HEAD.values(), "final loss"):
        t.add_column(name, justify="left" if name in ("arm", "layer", "site") else "right",
                     no_wrap=name == "arm")
    for arm, rs in _by_arm(rows, lr).items():
        loss = compact.pm(rs[0]["final_train_loss"])
        for site in dict.fromkeys(r["site"] for r in rs):
            site_rows = [r for r in rs if r["site"] == site]
            for r in site_rows:
                if r["layer"] in shown:
                    t.add_row(arm, r["layer"], SITE_LABEL[site],
                              *(compact.pm(r[m], 3) for m in DIST_HEAD), loss)
            t.add_row(arm, f"all {len(site_rows)}", SITE_LABEL[site],
                      *(fmt(_mean_of(site_rows, m), 3) for m in DIST_HEAD), loss,
                      style="bold", end_section=True)
    return t


def grad_table(spec: Spec, rows: Sequence[dict[str, Any]], lr: float) -> Table:
    """C3 at one learning rate: per arm x layer, ‖G‖, ‖G − G′‖, ‖G − G′‖/‖G‖ and cos(G, G′)."""
    shown, _ = _shown(spec, rows, MAX_TABLE_LAYERS)
    t = Table(title=f"C3 at lr = {fmt(lr)}: gradient ICS of each layer's weight W_i (Santurkar "
                    f"Def. 2.1), every {spec.analysis.ics.every} steps; mean over steps "
                    "(± std over seeds)", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("arm", "layer", *GRAD_HEAD.values(), "final loss"):
        t.add_column(name, justify="left" if name in ("arm", "layer") else "right",
                     no_wrap=name == "arm")
    for arm, rs in _by_arm(rows, lr).items():
        loss = compact.pm(rs[0]["final_train_loss"])
        for r in rs:
            if r["layer"] in shown:
                t.add_row(arm, r["layer"], *(compact.pm(r[m], 3) for m in GRAD_HEAD), loss)
        t.add_row(arm, f"all {len(rs)}", *(fmt(_mean_of(rs, m), 3) for m in GRAD_HEAD), loss,
                  style="bold", end_section=True)
    return t


def legend(spec: Spec, rows: dict[str, list[dict[str, Any]]]) -> str:
    """What the columns mean, and which layers the tables leave out."""
    lines = [
        "site: 'act in' = input to the nonlinearity (BN's output after γ, β on BN arms; the "
        "normalization's output on other normalized arms); 'BN in' = input to BN (to the "
        "normalization on LN, GN and ℓp arms). |Δμ|, |Δσ²|: per-unit change of mean and variance from θ_t to "
        "θ_{t+1}, mean over units; W1: 1-Wasserstein distance between the two per-unit "
        "distributions; pctl/step: mean |Δ| of tracked units' 15/50/85th percentiles per step; "
        "pctl drift: |last − first| of those percentiles over the run. C2 is judged on W1/step and "
        "pctl/step at 'act in' (training mode); * |Δμ|, |Δσ²| are fixed by construction for BN in "
        "training mode (mean β, variance γ²), shown but not judged; 'act in, eval' is the same input "
        "with running statistics and no noise. "
        "G = ∇_{W_i}L at θ_t; G′ = the same after every earlier layer took this step's update. "
        "'all N' rows: mean over the N measured layers (what the verdicts use). Layer 1 is not in "
        "the C3 table, its means or plots: with no earlier layers G′ = G there by definition. C3 "
        "judges the misalignment 1 − cos(G, G′). final loss: training loss at the end."
    ]
    for label, key in (("C2", "distribution"), ("C3", "gradient")):
        shown, total = _shown(spec, rows.get(key, []), MAX_TABLE_LAYERS)
        if len(shown) < total:
            lines.append(f"the {label} table shows {len(shown)} of {total} layers ({', '.join(shown)}); "
                         "--layers picks layers, --json has every series")
    return "\n".join(lines)


def summary_table(spec: Spec, rows: dict[str, list[dict[str, Any]]]) -> Table:
    """The default view: one row per learning rate x arm, each metric's mean over layers (C3:
    layers 2..k) and steps at the nonlinearity's input, as the verdicts use them."""
    t = compact.table(f"{spec.name}: shift per step of the nonlinearity's input (C2) and gradient "
                      "ICS (C3); mean over layers and steps",
                      caption="* fixed by construction for BN in training mode: shown, not judged. "
                      "1 − cos(G, G′): the misalignment C3 judges. --detail: per layer and site.")
    t.add_column("lr", justify="right", no_wrap=True)
    t.add_column("arm")
    for head in ("W1/step", "pctl/step", "|Δμ|/step*", "|Δσ²|/step*", "‖G − G′‖/‖G‖", "1 − cos(G, G′)",
                 "final train loss"):
        t.add_column(head, justify="right")
    dist = [r for r in rows.get("distribution", []) if r["site"] == "preact"]
    grad = rows.get("gradient", [])
    for lr in spec.train.lr:
        d_by, g_by = _by_arm(dist, lr), _by_arm(grad, lr)
        for arm in dict.fromkeys([*d_by, *g_by]):
            d, g = d_by.get(arm, []), g_by.get(arm, [])
            misalign = [1 - r["cos"][0] for r in g if r["cos"][0] is not None and math.isfinite(r["cos"][0])]
            loss = (d or g)[0]["final_train_loss"]
            t.add_row(compact.num(lr), arm, *(compact.num(_mean_of(d, k), 3) if d else "-"
                                              for k in ("w1", "d_pct", "d_mean", "d_var")),
                      compact.num(_mean_of(g, "rel_diff"), 3) if g else "-",
                      compact.num(sum(misalign) / len(misalign), 3) if misalign else "-",
                      compact.pm(loss))
    return t


def render_ics(spec: Spec, result: CommandResult, detail: bool = False) -> list:
    """What `bncli measure-ics` prints: one table of the C2/C3 means per arm and the short claims
    table; with `detail` the training table, the per-layer C2 and C3 tables, the legend and the
    claims' notes."""
    from bncli.render.norms import c9_lines
    from bncli.render.train import train_table

    classification = result.task == "classification"
    rows = result.tables.get("ics_rows", {})
    out: list = []
    if detail:
        out.append(train_table(spec, result.summary, classification))
        for lr in spec.train.lr:
            if rows.get("distribution"):
                out.append(dist_table(spec, rows["distribution"], lr))
            if rows.get("gradient"):
                out.append(grad_table(spec, rows["gradient"], lr))
        if rows.get("distribution"):
            out.append(legend(spec, rows))
    elif rows.get("distribution") or rows.get("gradient"):
        out.append(summary_table(spec, rows))
    out.append(compact.claims_output(result, "C2 (distributions stable with BN?) and "
                                             "C3 (BN does not reduce gradient ICS?)"
                                     + ("; C9 (ℓp: smoother without stable distributions?)"
                                        if any(c.claim == "C9" for c in result.claims) else ""), detail))
    out += c9_lines(result)
    return out


# --------------------------------------------------------------------------- plots


def _first_seed(records: Sequence[RunRecord], arm: str, lr: float) -> RunRecord | None:
    rs = [r for r in records if r.arm == arm and r.lr == lr]
    return min(rs, key=lambda r: r.seed) if rs else None


def _finite(vals: Sequence[float | None], positive: bool = False) -> list[float]:
    """NaN (a gap in the line) for missing or non-finite values, and for values <= 0 when the
    axis is logarithmic."""
    return [v if v is not None and math.isfinite(v) and (v > 0 or not positive) else math.nan
            for v in vals]


def plot_percentiles(
    spec: Spec, records: Sequence[RunRecord], lr: float, path: Path
) -> Path | None:
    """Ioffe Fig 1b-c: 15/50/85th percentiles of tracked units' nonlinearity input over steps."""
    arms = [a.name for a in spec.arms]
    runs = {a: _first_seed(records, a, lr) for a in arms}
    first = next((r for r in runs.values() if r and r.probes.get("ics_dist", {}).get("steps")),
                 None)
    if first is None:
        return None
    layers = pick_layers(first.probes["ics_dist"]["layers"], MAX_PLOT_LAYERS)
    plt = pyplot()
    fig, axes = plt.subplots(len(arms), len(layers), figsize=(3.6 * len(layers), 2.6 * len(arms)),
                             squeeze=False, sharex=True)
    cmap = plt.get_cmap("tab10")
    for i, arm in enumerate(arms):
        r = runs[arm]
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            if r is None or not r.probes.get("ics_dist", {}).get("steps"):
                ax.set_axis_off()
                continue
            p = r.probes["ics_dist"]
            site = p["per_layer"][layer]["preact"]
            steps = p["steps"]
            for u, unit in enumerate(p["tracked_units"][layer]):
                lo, mid, hi = (_finite(site["percentiles"][k][u]) for k in ("p15", "p50", "p85"))
                ax.fill_between(steps, lo, hi, color=cmap(u % 10), alpha=0.25)
                ax.plot(steps, mid, color=cmap(u % 10), lw=1.2, label=f"unit {unit}")
            ax.set_title(f"{arm} · {layer}", fontsize=9)
            if j == 0:
                ax.set_ylabel("nonlinearity input")
            if i == len(arms) - 1:
                ax.set_xlabel("step")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle(f"{spec.name}: 15/50/85th percentiles of the nonlinearity input (lr = {lr:g}, "
                 f"seed {first.seed})")
    return save_figure(fig, path)


def _plot_rows(spec: Spec, records: Sequence[RunRecord], lr: float, path: Path, probe: str,
               metrics: Sequence[tuple[str, str, bool]], title: str) -> Path | None:
    arms = [a.name for a in spec.arms]
    colors = arm_colors(arms)
    runs = {a: _first_seed(records, a, lr) for a in arms}
    first = next((r for r in runs.values() if r and r.probes.get(probe, {}).get("steps")), None)
    if first is None:
        return None
    measured = first.probes[probe]["layers"]
    layers = pick_layers(c3_layers(first.probes[probe]) if probe == "ics_grad" else measured,
                         MAX_PLOT_LAYERS)
    if not layers:
        return None
    plt = pyplot()
    size = (3.6 * len(layers), 2.6 * len(metrics))
    fig, axes = plt.subplots(len(metrics), len(layers), figsize=size,
                             squeeze=False, sharex=True)
    for i, (key, label, log) in enumerate(metrics):
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            drawn = False
            for arm, r in runs.items():
                if r is None or not r.probes.get(probe, {}).get("steps"):
                    continue
                d = r.probes[probe]["per_layer"][layer]
                ys = _finite(d["preact"][key] if probe == "ics_dist" else d[key], log)
                drawn = drawn or any(not math.isnan(v) for v in ys)
                ax.plot(r.probes[probe]["steps"], ys, color=colors[arm], label=arm, marker=".",
                        ms=3)
            if log and drawn:  # a log axis with nothing positive on it only warns
                log_scale(ax, "y")
            if i == 0:
                ax.set_title(layer, fontsize=9)
            if j == 0:
                ax.set_ylabel(label)
            if i == len(metrics) - 1:
                ax.set_xlabel("step")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle(f"{spec.name}: {title} (lr = {lr:g}, seed {first.seed})")
    return save_figure(fig, path)


def write_ics_files(spec: Spec, result: CommandResult, out_dir: Path) -> list[Path]:
    """--out plots per learning rate: percentile bands, shifts and gradient ICS."""
    written: list[Path | None] = []
    plots = out_dir / "plots"
    for lr in spec.train.lr:
        tag = f"lr{lr:g}"
        written.append(plot_percentiles(spec, result.runs, lr, plots / f"percentiles_{tag}.png"))
        written.append(_plot_rows(
            spec, result.runs, lr, plots / f"shifts_{tag}.png", "ics_dist",
            [("d_mean", "|Δμ| per step", True), ("d_var", "|Δσ²| per step", True),
             ("w1", "W1 per step", True)],
            "one-step shift of the nonlinearity input (Santurkar Fig 8)"))
        written.append(_plot_rows(
            spec, result.runs, lr, plots / f"gradient_ics_{tag}.png", "ics_grad",
            [("diff_norm", "‖G − G′‖", True), ("rel_diff", "‖G − G′‖/‖G‖", True),
             ("cos", "cos(G, G′)", False)],
            "gradient ICS (Santurkar Fig 3)"))
    return [p for p in written if p is not None]


render = render_ics
write_files = write_ics_files
