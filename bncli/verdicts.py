"""The verdict rule, shared by every analysis: per-seed metrics -> supported / refuted /
inconclusive (margins, Welch), and the comparisons a claim is made over (each normalized arm
against the plain arm)."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

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
    """(normalized arm, baseline arm) pairs: every normalized arm against the first arm without
    normalization or noise."""
    base = next((a.name for a in spec.arms if a.is_baseline), None)
    if base is None:
        return []
    return [(a.name, base) for a in spec.arms if a.normalized]


def by_arm_lr(records: Sequence[RunRecord]) -> dict[tuple[str, float], list[RunRecord]]:
    out: dict[tuple[str, float], list[RunRecord]] = {}
    for r in records:
        out.setdefault((r.arm, r.lr), []).append(r)
    return out


class ClaimGroup(NamedTuple):
    """One comparison of a claim: the learning rate, both arms, their runs and notes so far."""

    lr: float
    arm: str
    base: str
    a: list[RunRecord]
    b: list[RunRecord]
    notes: list[str]


def claim_pairs(
    spec: Spec,
    records: Sequence[RunRecord],
    pairs: Sequence[tuple[str, str]] | None = None,
    drop_diverged: bool = False,
) -> Iterator[ClaimGroup]:
    """Every (lr, arm, baseline) comparison with runs on both sides, in spec order.

    `pairs` defaults to verdicts.comparison_pairs (each BN arm against the plain arm). With
    `drop_diverged` runs that diverged are left out and the notes say which.
    """
    groups = by_arm_lr(records)
    for lr in spec.train.lr:
        for arm, base in comparison_pairs(spec) if pairs is None else pairs:
            a, b = groups.get((arm, lr), []), groups.get((base, lr), [])
            if not a or not b:
                continue
            notes: list[str] = []
            if drop_diverged:
                for name, rs in ((arm, a), (base, b)):
                    bad = [r for r in rs if r.diverged]
                    if bad:
                        at = ", ".join(str(r.diverged_at) for r in bad)
                        notes.append(f"{name} diverged ({len(bad)}/{len(rs)} seeds, step {at}): "
                                     "those runs are left out")
                a = [r for r in a if not r.diverged]
                b = [r for r in b if not r.diverged]
            yield ClaimGroup(lr, arm, base, list(a), list(b), notes)
