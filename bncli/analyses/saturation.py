"""Saturation results -> per-seed summaries, start/middle/end tables and the C7 / C8 claims."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bncli.analyses.base import (
    F32,
    Analysis,
    DataInfo,
    MemoryParts,
    Option,
    Sizes,
    Summary,
    every_option,
    probe_size_option,
)
from bncli.claims import ClaimInfo
from bncli.results import Claim, RunRecord
from bncli.spec import Spec
from bncli.stats import finite_mean
from bncli.verdicts import MetricInput, by_arm_lr, claim_pairs, make_claim, seeds_of

C7_STATEMENT = "BN keeps units out of saturation and gradients alive (no dead units, no vanishing)"
C8_STATEMENT = "γ and β restore what normalization takes away (affine BN vs BN without γ/β)"

# metrics (as stored per layer) that the phase table shows, in display order
PHASE_METRICS = (
    "linear",
    "saturated",
    "active",
    "dead",
    "grad_norm",
    "beta_mean",
    "beta_std",
    "beta_pos",
    "gamma_mean",
    "gamma_std",
    "id_dist",
)


# fractions (saturated, dead, active, outside |x| <= bound) closer than this count as equal: near 0
# a relative margin reads 0.05% against 0% as +100%
FRACTION_FLOOR = 0.005
# resolution of |log10 first/last gradient-norm ratio| (a 2 % change of the ratio)
LOG_RATIO_FLOOR = 0.01
PHASES = ("start", "middle", "end")


def probe_of(r: RunRecord) -> dict[str, Any]:
    return r.probes.get("saturation", {})


def run_mean(r: RunRecord, metric: str) -> float:
    """Mean over measurement steps of the mean over layers (layers lacking the metric skipped)."""
    p = probe_of(r)
    series = [d[metric] for d in p.get("per_layer", {}).values() if metric in d]
    if not series:
        return math.nan
    per_step = [finite_mean([s[i] for s in series]) for i in range(len(series[0]))]
    return finite_mean(per_step)


def grad_log_ratio(r: RunRecord) -> float:
    """Mean over measurement steps of |log10(‖∇W_1‖ / ‖∇W_k‖)|: 0 when first and last match."""
    vals = [
        abs(math.log10(v)) for v in probe_of(r).get("grad_ratio", []) if v is not None and math.isfinite(v) and v > 0
    ]
    return finite_mean(vals)


def phase_indices(n: int) -> list[int]:
    """Start, middle and end of n measurements (repeats when n < 3)."""
    return [0, n // 2, n - 1] if n else []


def _phases(probes: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[int]], list[str]]:
    """Each seed's own start / middle / end measurement (a seed that diverged ends early).

    Returns the phase names, per phase the index into each seed's series, and the step (or
    range of steps over seeds) behind it; phases that pick the same measurement of every seed
    (n < 3) appear once.
    """
    per_seed = [phase_indices(len(p["steps"])) for p in probes]
    names, idx, at = [], [], []
    for k, name in enumerate(PHASES):
        pick = [ix[k] for ix in per_seed]
        if pick in idx:
            continue
        steps = sorted({p["steps"][i] for p, i in zip(probes, pick, strict=True)})
        names.append(name)
        idx.append(pick)
        at.append(str(steps[0]) if len(steps) == 1 else f"{steps[0]}–{steps[-1]}")
    return names, idx, at


def phase_rows(spec: Spec, records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per (lr, arm, layer, metric): start / middle / end values, mean over seeds.

    Each seed contributes its own start, middle and end: a seed that diverged early is not read
    at another seed's step. `steps` holds each seed's step per phase; `at_steps` the step (or
    range over seeds) and `labels` the phase name with it, for display."""
    rows = []
    for (arm, lr), rs in by_arm_lr(records).items():
        probes = [probe_of(r) for r in rs if probe_of(r).get("steps")]
        if not probes:
            continue
        names, idx, at = _phases(probes)
        steps = [[p["steps"][i] for p, i in zip(probes, pick, strict=True)] for pick in idx]
        labels = [f"{n} ({a})" for n, a in zip(names, at, strict=True)]
        common = {"lr": lr, "arm": arm, "phases": names, "labels": labels, "at_steps": at,
                  "steps": steps}

        def at_phases(series: Sequence[Sequence[float]], idx=idx) -> list[float]:
            return [finite_mean([s[i] for s, i in zip(series, pick, strict=True)]) for pick in idx]

        for layer in probes[0]["layers"]:
            for metric in PHASE_METRICS:
                per_seed = [p["per_layer"][layer].get(metric) for p in probes]
                if any(s is None for s in per_seed):
                    continue
                rows.append({**common, "layer": layer, "metric": metric,
                             "values": at_phases(per_seed)})
        rows.append({**common, "layer": "first/last", "metric": "grad_ratio",
                     "values": at_phases([p["grad_ratio"] for p in probes])})
    return rows


def init_gradients(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Deep-net view at step 0: ‖∇W_i‖ per layer (mean over seeds) and growth per layer toward
    the input, the geometric mean of ‖∇W_i‖ / ‖∇W_{i+1}‖ = (‖∇W_1‖ / ‖∇W_k‖)^(1/(k−1))."""
    out = []
    for (arm, lr), rs in by_arm_lr(records).items():
        probes = [probe_of(r) for r in rs if probe_of(r).get("steps") and probe_of(r)["steps"][0] == 0]
        if not probes:
            continue
        layers = probes[0]["layers"]
        norms = [finite_mean([p["per_layer"][n]["grad_norm"][0] for p in probes]) for n in layers]
        growths = []
        for p in probes:
            r = p["grad_ratio"][0]
            if len(layers) > 1 and r is not None and math.isfinite(r) and r > 0:
                growths.append(r ** (1.0 / (len(layers) - 1)))
        out.append(
            {
                "lr": lr,
                "arm": arm,
                "layers": layers,
                "norms": norms,
                "growth_per_layer": finite_mean(growths),
            }
        )
    return out


def outside_fraction(r: RunRecord) -> float:
    """Fraction of pre-activations with |x| > bound: 1 − the stored |x| <= bound fraction."""
    return 1.0 - run_mean(r, "linear")


def _fraction(name: str, better: str, fn, a: list[RunRecord], b: list[RunRecord]) -> MetricInput:
    return MetricInput(name, better, [fn(r) for r in a], [fn(r) for r in b], FRACTION_FLOOR, "mean")


def _c7_metrics(activation: str, a: list[RunRecord], b: list[RunRecord], n_layers: int) -> list[MetricInput]:
    out = []
    if activation in ("sigmoid", "tanh"):
        out.append(_fraction("saturated fraction of pre-activations", "lower",
                             lambda r: run_mean(r, "saturated"), a, b))
        # judged outside the bound: the inside fraction sits near 1, where a relative margin
        # cannot be met
        out.append(_fraction("fraction of pre-activations with |x| > bound", "lower",
                             outside_fraction, a, b))
    elif activation == "relu":
        out.append(_fraction("dead-unit fraction", "lower", lambda r: run_mean(r, "dead"), a, b))
    if n_layers > 1:
        out.append(MetricInput("|log10 first/last layer gradient-norm ratio|", "lower",
                               [grad_log_ratio(r) for r in a], [grad_log_ratio(r) for r in b],
                               LOG_RATIO_FLOOR, "mean"))
    return out


def _loss_metrics(a: list[RunRecord], b: list[RunRecord], classification: bool) -> list[MetricInput]:
    from bncli.analyses.train import ERROR_FLOOR, LOSS_FLOOR

    out = [MetricInput("final train loss", "lower", [r.final_train_loss for r in a],
                       [r.final_train_loss for r in b], LOSS_FLOOR, "final")]
    if classification:
        out.append(MetricInput("best held-out error", "lower", [1 - r.best_test_acc for r in a],
                               [1 - r.best_test_acc for r in b], ERROR_FLOOR, "best"))
    else:
        out.append(MetricInput("best held-out MSE", "lower", [r.best_test_loss for r in a],
                               [r.best_test_loss for r in b], LOSS_FLOOR, "best"))
    return out


def ablation_pairs(spec: Spec) -> list[tuple[str, str]]:
    """(affine arm, the same normalization without γ/β) pairs: same norm (BN with BN, LN with LN,
    ...), same position preferred. Norms without γ/β (weight norm) have no ablation."""
    no_affine = [x for x in spec.arms if x.normalized and x.norm_info.affine and not x.affine]
    out = []
    for a in spec.arms:
        if not a.has_affine:
            continue
        norm = [x for x in no_affine if x.norm == a.norm
                and all(getattr(x, f) == getattr(a, f) for f in a.norm_info.variant_fields)]
        same = [x for x in norm if x.position == a.position]
        if norm:
            out.append((a.name, (same or norm)[0].name))
    return out


def c8_note(activation: str, a: list[RunRecord], b: list[RunRecord], bn: bool = True,
            beta_: bool = True) -> str:
    """The descriptive half of C8 at the last measurement (means over layers and seeds): sign of β,
    share of units with β > 0, distance to the identity-recovery point, ReLU active fraction."""
    beta = finite_mean([_first_last(r, "beta_mean")[1] for r in a])
    pos = finite_mean([_first_last(r, "beta_pos")[1] for r in a])
    dist = [finite_mean([_first_last(r, "id_dist")[i] for r in a]) for i in (0, 1)]
    sign = "positive" if beta > 0 else "negative" if beta < 0 else "zero"
    parts = ([f"at the end: mean β {beta:+.3g} ({sign}; {pos:.0%} of units have β > 0)"] if beta_
             else ["this normalization has γ but no β"])
    if bn:  # (σ, μ) of the batch is where BN computes the identity; other norms have no such point
        parts.append(f"relative distance of (γ, β) to the identity-recovery point (σ, μ) {dist[0]:.3g} "
                     f"at start → {dist[1]:.3g} at end")
    if activation == "relu":
        parts.append(
            f"ReLU active fraction {finite_mean([_first_last(r, 'active')[1] for r in a]):.1%} "
            f"with γ/β, {finite_mean([_first_last(r, 'active')[1] for r in b]):.1%} without"
        )
    return "; ".join(parts)


def _first_last(r: RunRecord, metric: str) -> tuple[float, float]:
    series = [d[metric] for d in probe_of(r).get("per_layer", {}).values() if metric in d]
    if not series or not series[0]:
        return math.nan, math.nan
    return finite_mean([s[0] for s in series]), finite_mean([s[-1] for s in series])


def _diverged_note(rs: Sequence[RunRecord]) -> str:
    """Diverged runs are measured only up to divergence: say so beside the verdict."""
    div = sorted({f"{r.arm} at step {r.diverged_at}" for r in rs if r.diverged_at is not None})
    return f"; diverged ({', '.join(div)}): measured only before that" if div else ""


def saturation_claims(spec: Spec, records: Sequence[RunRecord], classification: bool) -> list[Claim]:
    """C7 per (lr, BN arm vs plain); C8 per (lr, affine BN arm vs the same arm without γ/β)."""
    act = spec.model.activation
    from bncli.models.registry import widths

    n_layers = len(widths(spec.model))
    cfg = spec.verdict
    floor = f"fractions within {FRACTION_FLOOR:.1%} (absolute) of each other count as equal"
    claims: list[Claim] = []
    for lr, arm, base, a, b, _ in claim_pairs(spec, records):
        metrics = _c7_metrics(act, a, b, n_layers)
        note = f"mean over measurement steps and layers, then over seeds; {floor}"
        if act == "relu" and all(run_mean(r, "dead") == 0 for r in a + b):
            note += "; no dead units in either arm"
        note += _diverged_note(a + b)
        if metrics:
            claims.append(make_claim("C7", C7_STATEMENT, lr, arm, base, metrics, cfg, note,
                                     seeds=seeds_of(a), runs=(a, b)))
    for lr, arm, base, a, b, _ in claim_pairs(spec, records, ablation_pairs(spec)):
        metrics = _loss_metrics(a, b, classification)
        if act == "relu":
            metrics.append(_fraction("ReLU active fraction", "higher",
                                     lambda r: run_mean(r, "active"), a, b))
        elif act in ("sigmoid", "tanh"):
            metrics.append(_fraction("fraction of pre-activations with |x| > bound (out of the linear "
                                     "regime)", "higher", outside_fraction, a, b))
        info = spec.arm(arm).norm_info
        note = c8_note(act, a, b, info.identity_point, info.beta) + f"; {floor}" + _diverged_note(a + b)
        claims.append(make_claim("C8", C8_STATEMENT, lr, arm, base, metrics, cfg, note,
                                 seeds=seeds_of(a), runs=(a, b)))
    return claims


MODE_NOTE = (
    "measured on a fixed probe batch (the first {n} training examples) in training mode: BN "
    "normalizes with the probe batch's own statistics, running statistics are left untouched; "
    "gradient norms are of each layer's weight on the step's own mini-batch (no extra backward)"
)


def plan_probes(spec: Spec, arm: Any) -> tuple[str, ...]:
    """The saturation probe on a fixed probe batch."""
    return ("saturation",)


def summarize(spec: Spec, records: Sequence[RunRecord], data: DataInfo) -> Summary:
    cfg = spec.analysis.saturation
    classification = data.task == "classification"
    return Summary(saturation_claims(spec, records, classification), {
        "activation": spec.model.activation,
        "mode": MODE_NOTE.format(n=min(cfg.probe_size, data.n_train)),
        "phases": phase_rows(spec, records),
        "init_gradients": init_gradients(records),
        "ablation_pairs": [list(p) for p in ablation_pairs(spec)],
    })


HELP = """Track saturation, dead units, per-layer gradients (C7) and BN's γ/β (C8) while training.

Every N steps, on a fixed probe batch (the first analysis.saturation.probe_size training
examples) in training mode (BN uses the probe batch's statistics; running statistics are not
touched), per layer and arm: the fraction of pre-activations with |x| <= 2 (the bound is
analysis.saturation.linear_bound); for sigmoid/tanh the saturated fraction (values whose
derivative is below --threshold x its maximum); for ReLU the active fraction and dead units
(inactive on every probe example); ‖∇W_i‖ on the step's batch and the first/last ratio; for
BN layers β mean/spread, share of β > 0, γ spread and the relative distance of (γ, β) from the
identity-recovery point (σ, μ) of BN's input. Step 0 gives the deep-net initialization view:
gradient growth per layer toward the input.

Verdict rule (per learning rate, BN arm vs plain for C7; affine BN vs batchnorm_noaffine for
C8; each metric is the mean over measurement steps and layers, then over seeds):
C7 metrics: sigmoid/tanh: saturated fraction lower and the fraction with |x| > 2 lower; ReLU:
dead-unit fraction lower; all: |log10(‖∇W_1‖/‖∇W_k‖)| lower. C8 metrics: final train loss
lower, best held-out error (or MSE) lower, plus ReLU active fraction higher or, for
sigmoid/tanh, the fraction with |x| > 2 higher (out of the linear regime). Fractions within
0.5 percentage points of each other count as neither way. Supported when every metric points the claimed way
by more than the margin (default 10%, verdict.margin), refuted when every one points the other
way, else inconclusive; paired by seed, one-sided t-tests of the log ratio against the margin,
p Holm-adjusted across the command's claims < 0.05; fewer than 3 paired seeds: exploratory. The
sign of β and the identity-recovery distance are reported in the C8 note, not voted on."""


def memory(cfg: Any, z: Sizes) -> MemoryParts:
    m = min(cfg.probe_size, z.n_train)
    return [("saturation probes", 2 * m * z.act * F32 + z.params * F32, "analysis.saturation.probe_size")]

ANALYSIS = Analysis(
    name="saturation",
    command="saturation",
    claims=("C7", "C8"),
    section="saturation",
    options=(
        every_option("saturation"),
        probe_size_option("saturation"),
        Option("threshold", ("--threshold",), float | None, "analysis.saturation.threshold",
               "Sigmoid/tanh unit value counts as saturated when its derivative is below this "
               "fraction of the maximum derivative (overrides analysis.saturation.threshold)."),
    ),
    plan_probes=plan_probes,
    summarize=summarize,
    render="bncli.render.saturation",
    help=HELP,
    metrics=("linear", "saturated", "active", "dead", "grad_norm", "beta_mean", "beta_std", "beta_pos",
             "gamma_mean", "gamma_std", "id_dist"),
    memory=memory,
    shrink=(("analysis.saturation.probe_size", lambda c: {"probe_size": min(c.probe_size, 256)}),),
)


# its claims: what render, report, plot files and batch expectations read (bncli.claims)
CLAIMS = (
    ClaimInfo("C7", C7_STATEMENT, "saturation", figure="bncli.render.figures_more:c7_figure", plot_name="saturation",
              caption=('Left: saturated (sigmoid/tanh) or dead (ReLU) fraction per layer, mean over measurement '
                       'steps, mean ± std over seeds. Right: gradient norm by depth at the first (solid) and '
                       'last (dashed) measurement, mean over seeds.')),
    ClaimInfo("C8", C8_STATEMENT, "saturation", figure="bncli.render.figures_more:c8_figure", plot_name="gamma_beta",
              caption=('Mean γ and β over units per normalized layer (one colour per layer, one line style per '
                       'arm), mean over seeds.')),
)
