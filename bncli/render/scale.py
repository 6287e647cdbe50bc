"""Rendering for `bncli scale-check` (C6): α-grid and layer tables, notes, weight-norm plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from bncli.render import compact
from bncli.render.common import fmt
from bncli.results import CommandResult
from bncli.spec import Spec

WHEN_TITLE = {"init": "at initialization", "end": "at the end of training"}
STATUS_STYLE = {
    "invariant": "green",
    "ε-limited": "yellow",
    "not invariant": "red",
    "non-finite": "red",
}


def _e(v: float | None) -> str:
    """3 significant digits, one word (scientific below 1e-3: the small changes this is about)."""
    return compact.num(v, 3)


def static_table(spec: Spec, rows: Sequence[dict[str, Any]], when: str) -> Table:
    """Rows = lr × arm × α; each number is the worst over the checked layers, mean over seeds."""
    n = spec.seeds
    t = compact.table(f"C6 static check {WHEN_TITLE[when]}: W_i ← α·W_i one layer at a time (bias not "
                      f"scaled); BN in training mode; worst over layers, mean over {n} seed{'s' if n > 1 else ''}")
    for col, just in [
        ("lr", "right"),
        ("arm", "left"),
        ("α", "right"),
        ("max |Δoutput| (relative)", "right"),
        ("max |Δloss|", "right"),
        ("α·‖∇_{αW}L‖/‖∇_W L‖ (min–max; 1 = law)", "right"),
        ("‖α∇_{αW}L − ∇_W L‖/‖∇_W L‖", "right"),
        ("ε→0: rel. Δoutput | |α·ratio − 1|", "right"),
        ("ε pred. (BN out)", "right"),
        ("rel. Δoutput, eval mode", "right"),
        ("status", "left"),
    ]:
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    last = None
    for r in rows:
        if r["when"] != when:
            continue
        key = (r["lr"], r["arm"])
        if last is not None and key != last:
            t.add_section()
        last = key
        st = r["status"]
        t.add_row(
            fmt(r["lr"]),
            r["arm"],
            f"{r['alpha']:g}",
            f"{_e(r['out_abs'])} ({_e(r['out_rel'])}, {r['worst_layer']})",
            _e(r["loss_abs"]),
            f"{compact.num(r['ratio_min'])}–{compact.num(r['ratio_max'])}",
            _e(r["grad_err"]),
            "-" if r["eps0_out_rel"] is None else f"{_e(r['eps0_out_rel'])} | {_e(r['eps0_ratio_dev'])}",
            _e(r["eps_pred"]),
            _e(r["eval_out_rel"]),
            f"[{STATUS_STYLE.get(st, '')}]{st}[/]",
        )
    return t


def _alpha_span(alphas: Sequence[float], grid: Sequence[float]) -> str:
    if not alphas:
        return "none"
    if len(alphas) == len(grid):
        return "all"
    return f"{min(alphas):g}…{max(alphas):g} ({len(alphas)}/{len(grid)})"


def layer_table(spec: Spec, rows: Sequence[dict[str, Any]], grid: Sequence[float]) -> Table:
    """Rows = lr × arm × layer: ⟨∇L, W⟩, where ε bites, ‖W‖ over training and the norm identity."""
    t = compact.table("C6 per layer: gradient ⟂ W, ε limit, weight norm over training")
    for col in [
        "lr",
        "arm",
        "layer",
        "theory",
        "|cos(∇_W L, W)| init / end",
        "α passing init / end",
        "α below which ε bites (init / end)",
        "‖W‖ init → end (×growth)",
        "η/‖W‖² init → end",
        "Δ‖W‖² vs η²‖∇L‖²: mean rel. err",
        "steps ‖W‖ grew",
    ]:
        t.add_column(col, justify="left" if col in ("arm", "layer", "theory") else "right")
    last = None
    for r in rows:
        key = (r["lr"], r["arm"])
        if last is not None and key != last:
            t.add_section()
        last = key
        inv = r["invariant_alphas"]
        ident = _e(r["identity_rel_err"]) if r["identity_applies"] else "n/a (not plain SGD)"
        if r["identity_applies"] and not r["expected_invariant"]:
            ident += " (not invariant)"
        grew = "-" if r["grew_frac"] is None else f"{r['grew_frac']:.0%}"
        t.add_row(
            fmt(r["lr"]),
            r["arm"],
            r["layer"],
            ("invariant: " if r["expected_invariant"] else "not invariant: ") + r["why"],
            f"{_e(r['cos_init'])} / {_e(r['cos_end'])}",
            f"{_alpha_span(inv.get('init', []), grid)} / {_alpha_span(inv.get('end', []), grid)}",
            f"{fmt(r['alpha_eps_low_init'], 3)} / {fmt(r['alpha_eps_low_end'], 3)}"
            if r["alpha_eps_low_init"] is not None else ("- (no BN)" if not r["eps"] else "- (BN's closed form)"),
            f"{fmt(r['norm0'])} → {fmt(r['norm_end'])} (×{fmt(r['growth'], 3)})",
            f"{_e(r['eff0'])} → {_e(r['eff_end'])}",
            ident,
            grew,
        )
    return t


_STATUS_ORDER = ["invariant", "ε-limited", "not invariant", "non-finite"]


def summary_table(spec: Spec, sc: dict[str, Any]) -> Table | None:
    """The default view: one row per learning rate x arm, the worst over layers and the verdict's
    α of each C6 quantity, at initialization and at the end of training."""
    static = [r for r in sc.get("static", []) if r["alpha"] in set(sc.get("verdict_alphas") or sc["alphas"])]
    if not static:
        return None
    layers, norms = sc.get("layers", []), {(n["lr"], n["arm"]): n for n in sc.get("norms", [])}
    alphas = ", ".join(f"{a:g}" for a in sc.get("verdict_alphas") or sc["alphas"])
    n = spec.seeds
    t = compact.table(f"{spec.name}: scale invariance (C6), W_i ← α·W_i for α ∈ {{{alphas}}}; worst over "
                      f"α and layers{f', mean over {n} seeds' if n > 1 else ''}",
                      caption="Δout: relative output change, max |Δoutput|/max |output|; |αr−1|: "
                      "the 1/α gradient law, r = ‖∇_{αW}L‖/‖∇_W L‖; |cos|: |cos(∇_W L, W)|; status: "
                      "the worst α at the end. --detail: every α and layer, and the notes.")
    t.add_column("lr", justify="right", no_wrap=True)
    t.add_column("arm")
    for head in ("Δout init", "Δout end", "|αr−1| init", "|αr−1| end", "|cos| init", "|cos| end",
                 "‖W_end‖/‖W_0‖", "status"):
        t.add_column(head, justify="left" if head == "status" else "right", no_wrap=head == "status")

    def worst(rows: list[dict[str, Any]], key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return max(vals, key=lambda v: v if math.isfinite(v) else math.inf) if vals else None

    for lr in spec.train.lr:
        for arm in [a.name for a in spec.arms]:
            here = [r for r in static if r["lr"] == lr and r["arm"] == arm]
            if not here:
                continue
            init = [r for r in here if r["when"] == "init"]
            end = [r for r in here if r["when"] == "end"]
            lay = [r for r in layers if r["lr"] == lr and r["arm"] == arm]
            g = norms.get((lr, arm))
            growth = (f"{compact.num(g['growth_min'], 3)}–{compact.num(g['growth_max'], 3)}"
                      if g and not g["diverged_at"] else ("diverged" if g else "-"))
            st = max((r["status"] for r in end or init), key=lambda s: _STATUS_ORDER.index(s)
                     if s in _STATUS_ORDER else 0)
            t.add_row(compact.num(lr), arm,
                      *(compact.num(worst(rs, k), 3) for k in ("out_rel",) for rs in (init, end)),
                      *(compact.num(worst(rs, "ratio_dev"), 3) for rs in (init, end)),
                      *(compact.num(worst(lay, k), 3) for k in ("cos_init", "cos_end")),
                      growth, f"[{STATUS_STYLE.get(st, '')}]{st}[/]")
    return t


def render_scale(spec: Spec, result: CommandResult, detail: bool = False) -> list[Any]:
    """What `bncli scale-check` prints: one table of the C6 quantities per arm and the short
    claims table; with `detail` the α tables (init, end), the per-layer table, the notes and the
    claims' notes."""
    from bncli.render.norms import norm_word

    sc = result.tables.get("scale", {})
    title = f"C6: is the {norm_word(spec)} network invariant to the scale of W?"
    if not detail:
        summary = summary_table(spec, sc)
        return [*([summary] if summary is not None else []), compact.claims_output(result, title, False)]
    out: list[Any] = []
    for when in ("init", "end"):
        if any(r["when"] == when for r in sc.get("static", [])):
            out.append(static_table(spec, sc["static"], when))
    if sc.get("layers"):
        out.append(layer_table(spec, sc["layers"], sc["alphas"]))
    w = sc.get("static_wall_s", {})
    lines = [f"• {n}" for n in sc.get("notes", [])]
    if w.get("median") is not None:
        lines.append(
            f"• one static check (all α and layers, 3 passes) took {w['median']:.2f} s "
            f"(median of {w['n']}, max {w['max']:.2f} s)"
        )
    if lines:
        out.append("\n".join(lines))
    out.append(compact.claims_output(result, title, True))
    return out


render = render_scale
