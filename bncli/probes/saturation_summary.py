"""Saturation results -> per-seed summaries, start/middle/end tables and the C7 / C8 claims."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from bncli.results import Claim, RunRecord
from bncli.spec import Spec
from bncli.verdicts import MetricInput, by_arm_lr, comparison_pairs, make_claim

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


def _fmean(vals: Sequence[float | None]) -> float:
    f = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
    return statistics.fmean(f) if f else math.nan


def probe_of(r: RunRecord) -> dict[str, Any]:
    return r.probes.get("saturation", {})


def run_mean(r: RunRecord, metric: str) -> float:
    """Mean over measurement steps of the mean over layers (layers lacking the metric skipped)."""
    p = probe_of(r)
    series = [d[metric] for d in p.get("per_layer", {}).values() if metric in d]
    if not series:
        return math.nan
    per_step = [_fmean([s[i] for s in series]) for i in range(len(series[0]))]
    return _fmean(per_step)


def grad_log_ratio(r: RunRecord) -> float:
    """Mean over measurement steps of |log10(‖∇W_1‖ / ‖∇W_k‖)|: 0 when first and last match."""
    vals = [
        abs(math.log10(v)) for v in probe_of(r).get("grad_ratio", []) if v is not None and math.isfinite(v) and v > 0
    ]
    return _fmean(vals)


def phase_indices(n: int) -> list[int]:
    """Start, middle and end of n measurements (repeats when n < 3)."""
    return [0, n // 2, n - 1] if n else []


def phase_rows(spec: Spec, records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per (lr, arm, layer, metric): start / middle / end values, mean over seeds."""
    rows = []
    for (arm, lr), rs in by_arm_lr(records).items():
        probes = [probe_of(r) for r in rs if probe_of(r).get("steps")]
        if not probes:
            continue
        n = min(len(p["steps"]) for p in probes)
        idx = phase_indices(n)
        steps = [probes[0]["steps"][i] for i in idx]
        for layer in probes[0]["layers"]:
            for metric in PHASE_METRICS:
                per_seed = [p["per_layer"][layer].get(metric) for p in probes]
                if any(s is None for s in per_seed):
                    continue
                values = [_fmean([s[i] for s in per_seed]) for i in idx]
                rows.append(
                    {
                        "lr": lr,
                        "arm": arm,
                        "layer": layer,
                        "metric": metric,
                        "steps": steps,
                        "values": values,
                    }
                )
        ratios = [p["grad_ratio"] for p in probes]
        rows.append(
            {
                "lr": lr,
                "arm": arm,
                "layer": "first/last",
                "metric": "grad_ratio",
                "steps": steps,
                "values": [_fmean([s[i] for s in ratios]) for i in idx],
            }
        )
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
        norms = [_fmean([p["per_layer"][n]["grad_norm"][0] for p in probes]) for n in layers]
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
                "growth_per_layer": _fmean(growths),
            }
        )
    return out


def _c7_metrics(activation: str, a: list[RunRecord], b: list[RunRecord], n_layers: int) -> list[MetricInput]:
    def m(name: str, better: str, fn) -> MetricInput:
        return MetricInput(name, better, [fn(r) for r in a], [fn(r) for r in b])

    out = []
    if activation in ("sigmoid", "tanh"):
        out.append(m("saturated fraction of pre-activations", "lower", lambda r: run_mean(r, "saturated")))
        out.append(
            m(
                "fraction of pre-activations with |x| <= bound",
                "higher",
                lambda r: run_mean(r, "linear"),
            )
        )
    elif activation == "relu":
        out.append(m("dead-unit fraction", "lower", lambda r: run_mean(r, "dead")))
    if n_layers > 1:
        out.append(m("|log10 first/last layer gradient-norm ratio|", "lower", grad_log_ratio))
    return out


def _loss_metrics(a: list[RunRecord], b: list[RunRecord], classification: bool) -> list[MetricInput]:
    out = [
        MetricInput(
            "final train loss",
            "lower",
            [r.final_train_loss for r in a],
            [r.final_train_loss for r in b],
        )
    ]
    if classification:
        out.append(
            MetricInput(
                "best held-out error",
                "lower",
                [1 - r.best_test_acc for r in a],
                [1 - r.best_test_acc for r in b],
            )
        )
    else:
        out.append(
            MetricInput(
                "best held-out MSE",
                "lower",
                [r.best_test_loss for r in a],
                [r.best_test_loss for r in b],
            )
        )
    return out


def ablation_pairs(spec: Spec) -> list[tuple[str, str]]:
    """(affine BN arm, BN arm without γ/β) pairs: same kind and position preferred."""
    no_affine = [x for x in spec.arms if x.has_bn and not x.affine]
    out = []
    for a in spec.arms:
        if not a.has_bn or not a.affine or not no_affine:
            continue
        same = [x for x in no_affine if x.kind == a.kind and x.position == a.position]
        out.append((a.name, (same or no_affine)[0].name))
    return out


def c8_note(activation: str, a: list[RunRecord], b: list[RunRecord]) -> str:
    """The descriptive half of C8 at the last measurement (means over layers and seeds): sign of β,
    share of units with β > 0, distance to the identity-recovery point, ReLU active fraction."""
    beta = _fmean([_first_last(r, "beta_mean")[1] for r in a])
    pos = _fmean([_first_last(r, "beta_pos")[1] for r in a])
    dist = [_fmean([_first_last(r, "id_dist")[i] for r in a]) for i in (0, 1)]
    sign = "positive" if beta > 0 else "negative" if beta < 0 else "zero"
    parts = [
        f"at the end: mean β {beta:+.3g} ({sign}; {pos:.0%} of units have β > 0)",
        f"relative distance of (γ, β) to the identity-recovery point (σ, μ) {dist[0]:.3g} at "
        f"start → {dist[1]:.3g} at end",
    ]
    if activation == "relu":
        parts.append(
            f"ReLU active fraction {_fmean([_first_last(r, 'active')[1] for r in a]):.1%} "
            f"with γ/β, {_fmean([_first_last(r, 'active')[1] for r in b]):.1%} without"
        )
    return "; ".join(parts)


def _first_last(r: RunRecord, metric: str) -> tuple[float, float]:
    series = [d[metric] for d in probe_of(r).get("per_layer", {}).values() if metric in d]
    if not series or not series[0]:
        return math.nan, math.nan
    return _fmean([s[0] for s in series]), _fmean([s[-1] for s in series])


def _diverged_note(rs: Sequence[RunRecord]) -> str:
    """Diverged runs are measured only up to divergence: say so beside the verdict."""
    div = sorted({f"{r.arm} at step {r.diverged_at}" for r in rs if r.diverged_at is not None})
    return f"; diverged ({', '.join(div)}): measured only before that" if div else ""


def saturation_claims(spec: Spec, records: Sequence[RunRecord], classification: bool) -> list[Claim]:
    """C7 per (lr, BN arm vs plain); C8 per (lr, affine BN arm vs the same arm without γ/β)."""
    groups = by_arm_lr(records)
    act = spec.model.activation
    n_layers = len(spec.model.hidden if spec.model.kind == "mlp" else spec.model.channels)
    cfg = spec.verdict
    claims: list[Claim] = []
    for lr in spec.train.lr:
        for arm, base in comparison_pairs(spec):
            a, b = groups.get((arm, lr), []), groups.get((base, lr), [])
            if not a or not b:
                continue
            metrics = _c7_metrics(act, a, b, n_layers)
            note = "mean over measurement steps and layers, then over seeds"
            if act == "relu" and all(run_mean(r, "dead") == 0 for r in a + b):
                note += "; no dead units in either arm"
            note += _diverged_note(a + b)
            if metrics:
                claims.append(make_claim("C7", C7_STATEMENT, lr, arm, base, metrics, cfg, note))
        for arm, base in ablation_pairs(spec):
            a, b = groups.get((arm, lr), []), groups.get((base, lr), [])
            if not a or not b:
                continue
            metrics = _loss_metrics(a, b, classification)
            if act == "relu":
                metrics.append(
                    MetricInput(
                        "ReLU active fraction",
                        "higher",
                        [run_mean(r, "active") for r in a],
                        [run_mean(r, "active") for r in b],
                    )
                )
            elif act in ("sigmoid", "tanh"):
                metrics.append(
                    MetricInput(
                        "fraction of pre-activations with |x| <= bound (linear regime)",
                        "lower",
                        [run_mean(r, "linear") for r in a],
                        [run_mean(r, "linear") for r in b],
                    )
                )
            note = c8_note(act, a, b) + _diverged_note(a + b)
            claims.append(make_claim("C8", C8_STATEMENT, lr, arm, base, metrics, cfg, note))
    return claims
