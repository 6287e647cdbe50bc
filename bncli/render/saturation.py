"""Rendering for `bncli saturation` (C7, C8): layer × arm tables, the init-gradient view, plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from bncli.render import compact
from bncli.render.common import fmt
from bncli.results import CommandResult
from bncli.spec import Spec

_LABELS = {
    "linear": "% pre-act |x|≤{b:g}",
    "saturated": "% saturated (f'<{t:g}·max)",
    "active": "% active (x>0)",
    "dead": "% dead units",
    "grad_norm": "‖∇W_i‖₂",
    "beta_mean": "β mean",
    "beta_std": "β std",
    "beta_pos": "% units β>0",
    "gamma_mean": "γ mean",
    "gamma_std": "γ std",
    "id_dist": "‖(γ,β)−(σ,μ)‖ rel.",
}
_PERCENT = {"linear", "saturated", "active", "dead", "beta_pos"}
C7_COLUMNS = ("linear", "saturated", "active", "dead", "grad_norm")
C8_COLUMNS = ("beta_mean", "beta_std", "beta_pos", "gamma_mean", "gamma_std", "id_dist")


def _label(metric: str, spec: Spec) -> str:
    cfg = spec.analysis.saturation
    return _LABELS[metric].format(b=cfg.linear_bound, t=cfg.threshold)


def _cell(metric: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{100 * value:.1f}" if metric in _PERCENT else fmt(value, 3)


def _index(result: CommandResult) -> dict[tuple[float, str, str, str], dict[str, Any]]:
    return {(r["lr"], r["arm"], r["layer"], r["metric"]): r for r in result.tables.get("phases", [])}


def layer_table(
    spec: Spec,
    result: CommandResult,
    lr: float,
    metrics: Sequence[str],
    arms: Sequence[str],
    title: str,
) -> Table | None:
    """Rows = arm × layer × (start, middle, end of training); one column per metric."""
    idx = _index(result)
    here = {k: v for k, v in idx.items() if k[0] == lr and k[1] in arms}
    cols = [m for m in metrics if any(k[3] == m for k in here)]
    if not here or not cols:
        return None
    n_seeds = spec.seeds
    t = compact.table(f"{title}, lr = {fmt(lr)} (mean over {n_seeds} seed{'s' if n_seeds > 1 else ''})")
    t.add_column("arm")
    t.add_column("layer")
    t.add_column("phase (step)", justify="right")
    for m in cols:
        t.add_column(_label(m, spec), justify="right")
    layers = [n for n in dict.fromkeys(k[2] for k in here) if n != "first/last"]
    for arm in arms:
        rows = []
        for n in layers:
            found = [idx.get((lr, arm, n, m)) for m in cols]
            ref = next((f for f in found if f is not None), None)
            if ref is None:
                continue
            # each seed's own start / middle / end (summary.phase_rows); labels carry the steps
            for i, label in enumerate(ref["labels"]):
                rows.append(
                    [
                        arm,
                        n,
                        label,
                        *[
                            _cell(m, f["values"][i]) if f else "-"
                            for m, f in zip(cols, found, strict=True)
                        ],
                    ]
                )
        for j, row in enumerate(rows):
            t.add_row(*row, end_section=j == len(rows) - 1)
    return t


def gradient_table(result: CommandResult, lr: float) -> Table:
    """First/last gradient-norm ratio over training and the step-0 growth per layer, per arm."""
    idx = _index(result)
    init = {r["arm"]: r for r in result.tables.get("init_gradients", []) if r["lr"] == lr}
    t = compact.table(f"gradients by depth, lr = {fmt(lr)}")
    t.add_column("arm")
    t.add_column("‖∇W₁‖/‖∇W_k‖ at start → middle → end (@step)", justify="right")
    t.add_column("step 0: ‖∇W_i‖₂ for layer 1..k", overflow="fold")
    t.add_column("step 0: growth per layer toward input (geo. mean)", justify="right")
    for (lr_, arm, _layer, metric), row in idx.items():
        if lr_ != lr or metric != "grad_ratio":
            continue
        ini = init.get(arm)
        norms = ", ".join(fmt(v, 3) for v in ini["norms"]) if ini else "-"
        growth = (
            f"×{ini['growth_per_layer']:.3f}"
            if ini and math.isfinite(ini["growth_per_layer"])
            else "-"
        )
        ratios = " → ".join(f"{_cell('grad_ratio', v)} @{at}"
                            for v, at in zip(row["values"], row["at_steps"], strict=True))
        t.add_row(arm, ratios, norms, growth)
    return t


def summary_table(spec: Spec, result: CommandResult) -> Table | None:
    """The default view: one row per learning rate x arm at the end of training, each per-layer
    metric's mean over layers, the first/last gradient-norm ratio at the start and the end."""
    idx = _index(result)
    if not idx:
        return None
    c7 = [m for m in ("saturated", "linear", "dead", "active")
          if any(k[3] == m and any(v is not None for v in r["values"]) for k, r in idx.items())]
    c8 = [m for m in ("gamma_mean", "beta_mean") if any(k[3] == m for k in idx)]
    n = spec.seeds
    end = next(iter(idx.values()))["at_steps"][-1]
    t = compact.table(f"{spec.name}: pre-activations (C7) and γ, β (C8) at the end of training (step "
                      f"{end}), mean over layers{f' and {n} seeds' if n > 1 else ''}",
                      caption="‖∇W₁‖/‖∇W_k‖: gradient norm of the first layer over the last's (C7 "
                      "judges |log10| of it). The claims compare each run's mean over measurements "
                      "(--detail: those, and per layer start / middle / end).")
    t.add_column("lr", justify="right", no_wrap=True)
    t.add_column("arm")
    for m in c7:
        t.add_column(_label(m, spec), justify="right")
    t.add_column("‖∇W₁‖/‖∇W_k‖ start", justify="right")
    t.add_column("‖∇W₁‖/‖∇W_k‖ end", justify="right")
    for m in c8:
        t.add_column(_label(m, spec), justify="right")

    def end_mean(lr: float, arm: str, metric: str) -> float | None:
        vals = [r["values"][-1] for k, r in idx.items() if k[:2] == (lr, arm) and k[3] == metric
                and r["values"] and r["values"][-1] is not None and math.isfinite(r["values"][-1])]
        return sum(vals) / len(vals) if vals else None

    for lr in spec.train.lr:
        for arm in [a.name for a in spec.arms]:
            ratio = idx.get((lr, arm, "first/last", "grad_ratio"))
            if ratio is None and not any(k[:2] == (lr, arm) for k in idx):
                continue
            first, last = (ratio["values"][0], ratio["values"][-1]) if ratio else (None, None)
            t.add_row(compact.num(lr), arm, *(_cell(m, end_mean(lr, arm, m)) for m in c7),
                      compact.num(first, 3), compact.num(last, 3),
                      *(_cell(m, end_mean(lr, arm, m)) for m in c8))
    return t


def render_saturation(spec: Spec, result: CommandResult, detail: bool = False) -> list:
    """What `bncli saturation` prints: one table of end-of-training means per arm and the short
    claims table; with `detail` the mode line, the per-layer C7 and C8 tables over start /
    middle / end, the gradients by depth and the claims' notes."""
    arms = [a.name for a in spec.arms]
    bn_affine = [a.name for a in spec.arms if a.has_affine]
    if not detail:
        summary = summary_table(spec, result)
        out: list = [summary] if summary is not None else []
    else:
        out = [f"[dim]{result.tables.get('mode', '')}[/dim]"]
    for lr in spec.train.lr if detail else []:
        t = layer_table(spec, result, lr, C7_COLUMNS, arms, "C7: pre-activations per layer")
        if t is not None:
            out.append(t)
        out.append(gradient_table(result, lr))
        if bn_affine:
            only_bn = all(spec.arm(n).norm_info.reference for n in bn_affine)
            title = "C8: γ and β per BN layer" if only_bn else "C8: γ and β per normalization layer"
            t = layer_table(spec, result, lr, C8_COLUMNS, bn_affine, title)
            if t is not None:
                out.append(t)
    no_affine = [a.name for a in spec.arms if a.normalized and a.norm_info.affine and not a.affine]
    if no_affine:
        out.append(f"{', '.join(no_affine)}: affine: false — no γ/β to report (ablation arm)")
    no_gamma = [a.name for a in spec.arms if a.normalized and not a.norm_info.affine]
    if no_gamma:
        out.append(f"{', '.join(no_gamma)}: weight norm has no γ/β (its gain g is part of W)")
    if result.claims:
        out.append(compact.claims_output(result, "C7 / C8: saturation, gradients, γ and β", detail))
    if result.interrupted and not result.claims:
        out.append("no verdict: interrupted before the arms to compare had finished")
        return out
    if not any(c.claim == "C7" for c in result.claims):
        out.append("no C7 verdict: the spec needs a plain arm and a BN arm to compare")
    if not any(c.claim == "C8" for c in result.claims):
        out.append(
            "no C8 verdict: add the ablation arm (e.g. --arms plain,batchnorm,batchnorm_noaffine)"
        )
    return out


render = render_saturation
