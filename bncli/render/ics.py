"""Rendering for `bncli measure-ics` (C2, C3): per layer x arm tables and PNG plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from bncli.render import compact
from bncli.render.common import fmt
from bncli.results import CommandResult
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
    t = compact.table(f"C2 at lr = {fmt(lr)}: layer-input distribution shift, fixed probe batch of "
                      f"{cfg.probe_size}, every {cfg.every} steps; mean over steps (± std over seeds)")
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
    t = compact.table(f"C3 at lr = {fmt(lr)}: gradient ICS of each layer's weight W_i (Santurkar "
                      f"Def. 2.1), every {spec.analysis.ics.every} steps; mean over steps (± std over seeds)")
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
    layers 2..k), steps and seeds at the nonlinearity's input (arithmetic means: the claims below
    compare the seeds paired, geometrically)."""
    t = compact.table(f"{spec.name}: shift per step of the nonlinearity's input (C2), gradient ICS (C3)",
                      caption="arithmetic means over layers, steps and seeds (the claims compare seeds "
                      "paired, geometric means: --detail). "
                      "* fixed by construction for BN in training mode: not judged. C3 judges "
                      "‖G − G′‖/‖G‖ and the misalignment 1 − cos(G, G′).")
    t.add_column("lr", justify="right", no_wrap=True)
    t.add_column("arm")
    for head in ("W1/step", "pctl/step", "|Δμ|/step*", "|Δσ²|/step*", "‖G−G′‖/‖G‖", "1−cos(G,G′)"):
        t.add_column(head, justify="right", no_wrap=True)
    dist = [r for r in rows.get("distribution", []) if r["site"] == "preact"]
    grad = rows.get("gradient", [])
    for lr in spec.train.lr:
        d_by, g_by = _by_arm(dist, lr), _by_arm(grad, lr)
        for arm in dict.fromkeys([*d_by, *g_by]):
            d, g = d_by.get(arm, []), g_by.get(arm, [])
            misalign = [1 - r["cos"][0] for r in g if r["cos"][0] is not None and math.isfinite(r["cos"][0])]
            t.add_row(compact.num(lr), arm, *(compact.num(_mean_of(d, k), 3) if d else "-"
                                              for k in ("w1", "d_pct", "d_mean", "d_var")),
                      compact.num(_mean_of(g, "rel_diff"), 3) if g else "-",
                      compact.num(sum(misalign) / len(misalign), 3) if misalign else "-")
    return compact.drop_order(t, "|Δμ|/step*", "|Δσ²|/step*")


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


render = render_ics
