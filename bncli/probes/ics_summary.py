"""measure-ics results -> per layer x arm rows and the C2 / C3 claims (rule: SCIENCE.md)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from bncli.results import Claim, RunRecord, mean_std
from bncli.spec import Spec
from bncli.verdicts import MetricInput, by_arm_lr, comparison_pairs, make_claim

C2_STATEMENT = (
    "BN keeps each layer's input distribution stable (Ioffe & Szegedy 2015): the input to the "
    "nonlinearity shifts less from step to step with BN"
)
C3_STATEMENT = (
    "BN does not reduce internal covariate shift (Santurkar et al. 2018, Def. 2.1): with BN, "
    "‖G − G′‖/‖G‖ is not smaller and cos(G, G′) not larger than without"
)
C2_METRICS = (("d_mean", "|Δμ| per step"), ("d_var", "|Δσ²| per step"), ("w1", "W1 shift per step"))
# the C3 verdict uses the relative difference: ‖G − G′‖ alone scales with the gradient, which BN
# rescales (scale invariance), so it would compare gradient sizes rather than shifts
C3_METRICS = (("rel_diff", "‖G − G′‖/‖G‖", "higher"), ("cos", "cos(G, G′)", "lower"))
DIST_COLUMNS = ("mean", "var", "d_mean", "d_var", "w1", "pct_drift")
GRAD_COLUMNS = ("g_norm", "diff_norm", "rel_diff", "cos")


def _fmean(vals: Sequence[float | None]) -> float:
    f = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
    return statistics.fmean(f) if f else math.nan


def percentile_drift(site: dict[str, Any]) -> float:
    """Mean over tracked units and 15/50/85th percentiles of |last − first| over the run."""
    drifts = [abs(s[-1] - s[0]) for series in site["percentiles"].values() for s in series if s]
    return _fmean(drifts)


def site_metric(site: dict[str, Any], metric: str) -> float:
    """Mean over measurement steps of one distribution metric (or the run's percentile drift)."""
    return percentile_drift(site) if metric == "pct_drift" else _fmean(site[metric])


def run_dist_mean(r: RunRecord, metric: str, site: str = "preact") -> float:
    """Mean over measured layers (each a mean over steps) of one C2 metric at one site."""
    per_layer = r.probes.get("ics_dist", {}).get("per_layer", {})
    return _fmean([site_metric(d[site], metric) for d in per_layer.values()])


def run_grad_mean(r: RunRecord, metric: str) -> float:
    """Mean over measured layers (each a mean over steps) of one C3 metric."""
    per_layer = r.probes.get("ics_grad", {}).get("per_layer", {})
    return _fmean([_fmean(d[metric]) for d in per_layer.values()])


def _shows_bn_input(spec: Spec, arm: str) -> bool:
    a = spec.arm(arm)
    return a.has_bn or a.noisy  # elsewhere BN's input is the same tensor as the preact


def layer_rows(spec: Spec, records: Sequence[RunRecord]) -> dict[str, list[dict[str, Any]]]:
    """Per (lr, arm, layer[, site]): each metric's mean over steps, then mean ± std over seeds."""
    dist_rows: list[dict[str, Any]] = []
    grad_rows: list[dict[str, Any]] = []
    for (arm, lr), rs in by_arm_lr(records).items():
        base = {"lr": lr, "arm": arm, "n_seeds": len(rs), "n_diverged": sum(r.diverged for r in rs),
                "final_train_loss": mean_std([r.final_train_loss for r in rs])}
        dist = [r.probes.get("ics_dist", {}) for r in rs]
        layers = dist[0].get("layers", []) if dist else []
        sites = ["preact", "bn_in"] if _shows_bn_input(spec, arm) else ["preact"]
        for layer in layers:
            for site in sites:
                row = {**base, "layer": layer, "site": site}
                for m in DIST_COLUMNS:
                    row[m] = mean_std([site_metric(p["per_layer"][layer][site], m) for p in dist])
                dist_rows.append(row)
        grads = [r.probes.get("ics_grad", {}) for r in rs]
        for layer in grads[0].get("layers", []) if grads else []:
            row = {**base, "layer": layer}
            for m in GRAD_COLUMNS:
                row[m] = mean_std([_fmean(g["per_layer"][layer][m]) for g in grads])
            grad_rows.append(row)
    return {"distribution": dist_rows, "gradient": grad_rows}


def _pairs(spec: Spec, records: Sequence[RunRecord]):
    """(lr, BN arm, baseline, BN runs, baseline runs, note) for every comparison with data."""
    groups = by_arm_lr(records)
    for lr in spec.train.lr:
        for arm, base in comparison_pairs(spec):
            a, b = groups.get((arm, lr), []), groups.get((base, lr), [])
            if not a or not b:
                continue
            notes = []
            for name, rs in ((arm, a), (base, b)):
                bad = [r for r in rs if r.diverged]
                if bad:
                    at = ", ".join(str(r.diverged_at) for r in bad)
                    notes.append(f"{name} diverged ({len(bad)}/{len(rs)} seeds, step {at}): "
                                 "those runs are left out")
            ok_a = [r for r in a if not r.diverged]
            ok_b = [r for r in b if not r.diverged]
            yield lr, arm, base, ok_a, ok_b, notes


def c2_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C2 per learning rate and BN arm: one-step shifts of the nonlinearity's input, BN vs plain."""
    out = []
    for lr, arm, base, a, b, notes in _pairs(spec, records):
        metrics = [
            MetricInput(f"mean {label}", "lower",
                        [run_dist_mean(r, m) for r in a], [run_dist_mean(r, m) for r in b])
            for m, label in C2_METRICS
        ]
        notes.append("input to the nonlinearity on a fixed probe batch; mean over layers and "
                     f"every {spec.analysis.ics.every} steps")
        out.append(make_claim("C2", C2_STATEMENT, lr, arm, base, metrics, spec.verdict,
                              "; ".join(notes)))
    return out


def c3_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C3 per learning rate and BN arm: 'supported' when BN's gradient ICS is the larger."""
    if not spec.analysis.ics.gradient_ics:
        return []
    out = []
    for lr, arm, base, a, b, notes in _pairs(spec, records):
        metrics = [
            MetricInput(f"mean {label}", better,
                        [run_grad_mean(r, m) for r in a], [run_grad_mean(r, m) for r in b])
            for m, label, better in C3_METRICS
        ]
        abs_a = _fmean([run_grad_mean(r, "diff_norm") for r in a])
        abs_b = _fmean([run_grad_mean(r, "diff_norm") for r in b])
        notes.append(f"absolute ‖G − G′‖ {abs_a:.4g} ({arm}) vs {abs_b:.4g} ({base}), not judged: "
                     "it scales with ‖G‖; refuted would mean BN reduces gradient ICS")
        out.append(make_claim("C3", C3_STATEMENT, lr, arm, base, metrics, spec.verdict,
                              "; ".join(notes)))
    return out
