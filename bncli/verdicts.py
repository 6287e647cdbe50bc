"""Verdicts: per-arm summaries -> supported / refuted / inconclusive, per SCIENCE.md's rule."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from bncli.results import Claim, MetricComparison, RunRecord
from bncli.spec import Spec, VerdictSpec

RULE = (
    "supported: every metric points the claimed way by more than the margin (relative to the "
    "baseline arm); refuted: every metric points the other way by the margin; otherwise "
    "inconclusive. With >= {n} seeds per arm each metric must also pass Welch's t-test "
    "(p < {alpha}). Margin {margin:.0%}."
)


@dataclass(frozen=True)
class MetricInput:
    """Per-seed values of one metric for the BN arm and the baseline arm."""

    name: str
    better: str  # "lower" or "higher" for the BN arm, as the claim predicts
    arm_values: Sequence[float]
    baseline_values: Sequence[float]
    # differences of the means smaller than this count as "neither", whatever the relative
    # difference: near-zero baselines (e.g. 0.05% vs 0% saturated) would otherwise read as ±100%
    abs_floor: float = 0.0


def _finite(vals: Sequence[float]) -> list[float]:
    return [float(v) for v in vals if v is not None and math.isfinite(float(v))]


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch's t-test p-value; identical constant groups give p = 0 or 1."""
    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        return 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0
    from scipy import stats  # imported here: scipy.stats costs ~1 s at start-up

    with warnings.catch_warnings():  # one constant group: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def compare_metric(m: MetricInput, cfg: VerdictSpec) -> MetricComparison:
    a, b = _finite(m.arm_values), _finite(m.baseline_values)
    am = statistics.fmean(a) if a else math.nan
    bm = statistics.fmean(b) if b else math.nan
    if math.isfinite(am) and math.isfinite(bm):
        denom = abs(bm) if abs(bm) > 1e-12 else max(abs(am), 1e-12)
        rel = (am - bm) / denom
    else:
        rel = math.nan
    p = None
    if len(a) >= cfg.min_seeds_for_test and len(b) >= cfg.min_seeds_for_test:
        p = welch_p(a, b)
    if not math.isfinite(rel) or abs(am - bm) <= m.abs_floor:
        points = "neither"
    else:
        signed = rel if m.better == "higher" else -rel
        if signed > cfg.margin:
            points = "claimed"
        elif signed < -cfg.margin:
            points = "against"
        else:
            points = "neither"
        if points != "neither" and p is not None and not (p < cfg.alpha):
            points = "neither"
    return MetricComparison(
        name=m.name,
        better=m.better,
        arm_mean=am,
        baseline_mean=bm,
        arm_values=a,
        baseline_values=b,
        rel_diff=rel,
        p_value=p,
        points=points,
    )


def decide(metrics: Sequence[MetricComparison]) -> str:
    if metrics and all(m.points == "claimed" for m in metrics):
        return "supported"
    if metrics and all(m.points == "against" for m in metrics):
        return "refuted"
    return "inconclusive"


def rule_text(cfg: VerdictSpec) -> str:
    return RULE.format(n=cfg.min_seeds_for_test, alpha=cfg.alpha, margin=cfg.margin)


def make_claim(
    claim: str,
    statement: str,
    lr: float,
    arm: str,
    baseline: str,
    metrics: Sequence[MetricInput],
    cfg: VerdictSpec,
    note: str = "",
    verdict_override: str | None = None,
) -> Claim:
    """Compare each metric and decide; `verdict_override` is for decisive outcomes like divergence."""
    comps = [compare_metric(m, cfg) for m in metrics]
    return Claim(
        claim=claim,
        statement=statement,
        verdict=verdict_override or decide(comps),
        lr=lr,
        arm=arm,
        baseline=baseline,
        metrics=comps,
        rule=rule_text(cfg),
        note=note,
    )


def comparison_pairs(spec: Spec) -> list[tuple[str, str]]:
    """(BN arm, baseline arm) pairs: every BN arm against the first arm without BN or noise."""
    base = next((a.name for a in spec.arms if a.is_baseline), None)
    if base is None:
        return []
    return [(a.name, base) for a in spec.arms if a.normalized]


def by_arm_lr(records: Sequence[RunRecord]) -> dict[tuple[str, float], list[RunRecord]]:
    out: dict[tuple[str, float], list[RunRecord]] = {}
    for r in records:
        out.setdefault((r.arm, r.lr), []).append(r)
    return out


C1_STATEMENT = "BN speeds training and tolerates larger learning rates (Ioffe & Szegedy 2015 §4.1)"


def c1_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C1 per learning rate and BN arm: final train loss, best held-out error (or MSE), steps to target.

    A run that never reaches the target counts as needing all its steps (censored; said in the
    note). If exactly one arm diverged at this learning rate, that alone decides the verdict.
    """
    groups = by_arm_lr(records)
    cfg = spec.verdict
    classification = any(r.test_acc and r.test_acc[0] is not None for r in records)
    # a run that never reaches the target counts one evaluation beyond the budget, so that
    # "reached at the last evaluation" and "never reached" differ
    horizon = spec.train.steps + spec.train.eval_every

    def to_target(rs: list[RunRecord]) -> list[float]:
        return [float(r.steps_to_target if r.steps_to_target is not None else horizon)
                for r in rs if not r.diverged]

    out = []
    for lr in spec.train.lr:
        for arm, base in comparison_pairs(spec):
            a, b = groups.get((arm, lr), []), groups.get((base, lr), [])
            if not a or not b:
                continue

            metrics = [
                MetricInput("final train loss", "lower",
                            [r.final_train_loss for r in a], [r.final_train_loss for r in b]),
            ]
            if classification:
                metrics.append(MetricInput(
                    "best held-out error", "lower",
                    [1 - r.best_test_acc for r in a], [1 - r.best_test_acc for r in b]))
            else:
                metrics.append(MetricInput(
                    "best held-out MSE", "lower",
                    [r.best_test_loss for r in a], [r.best_test_loss for r in b]))
            has_target = (spec.train.target_accuracy is not None if classification
                          else spec.train.target_loss is not None)
            if has_target:
                metrics.append(MetricInput("steps to target", "lower", to_target(a), to_target(b)))
            a_div = sum(r.diverged for r in a) / len(a)
            b_div = sum(r.diverged for r in b) / len(b)
            override, note = None, f"runs that never reach the target count as {horizon} steps"
            if a_div or b_div:
                metrics.append(MetricInput("diverged (fraction of seeds)", "lower",
                                           [float(r.diverged) for r in a], [float(r.diverged) for r in b]))
                note += (f"; diverged: {arm} {sum(r.diverged for r in a)}/{len(a)} seeds, {base} "
                         f"{sum(r.diverged for r in b)}/{len(b)} (diverged runs are left out of the metrics)")
            if a_div == 0 and b_div == 1:
                override = "supported"
                note = f"{base} diverged at every seed, {arm} trained: BN tolerates this learning rate"
            elif a_div == 1 and b_div == 0:
                override = "refuted"
                note = f"{arm} diverged at every seed, {base} trained"
            elif a_div == 1 and b_div == 1:
                note = "both arms diverged"
            out.append(make_claim("C1", C1_STATEMENT, lr, arm, base, metrics, cfg, note, override))
    return out
