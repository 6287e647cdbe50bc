"""The verdict rule, shared by every analysis (SCIENCE.md, Verdicts): per-seed metrics of two
arms, paired by seed -> per-metric effect with its bootstrap interval and paired test -> Holm over
the command's family -> supported / refuted / inconclusive, or `exploratory` below the seeds a
confirmatory verdict needs; plus the comparisons a claim is made over (each normalized arm
against the plain arm). The statistics themselves are in verdict_stats.py."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from bncli.results import Claim, MetricComparison, RunRecord
from bncli.spec import Spec, VerdictSpec
from bncli.verdict_stats import bootstrap_indices, holm, paired

RULE = (
    "per seed the paired relative difference arm vs baseline (same init and batches); over seeds its "
    "mean with a {level:.0%} paired-bootstrap interval and a paired t-test (Holm-adjusted over the "
    "command's metrics x learning rates x arms). supported: every metric points the claimed way by "
    "more than the margin with its interval clear of the margin and adjusted p < {alpha}; refuted: "
    "every metric the other way likewise; else inconclusive. A difference inside the metric's noise "
    "floor points neither way. Fewer than {n} paired seeds: exploratory (the direction only). "
    "Margin {margin:.0%}."
)
EXPLORATORY = "exploratory"
HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"
# aggregation a metric declares over its measurement steps (SCIENCE.md, Verdicts)
AGGREGATES = ("final", "best", "mean", "median", "mean of logs", "worst")


@dataclass(frozen=True)
class MetricInput:
    """Per-seed values of one metric for the arm and the baseline arm, aligned by seed.

    `abs_floor`: differences of the means at most this big point neither way (a noise floor:
    absolute for shifts and fractions, binomial for error rates). `aggregate`: how a run's value
    was made from its measurement steps (declared, shown). `test`: "superiority" (the claimed
    direction by more than the margin) or "equivalence" (no worse than the baseline beyond the
    margin: TOST). `part`: the part of a composite claim (C9) the metric belongs to."""

    name: str
    better: str  # "lower" or "higher" for the arm, as the claim predicts
    arm_values: Sequence[float]
    baseline_values: Sequence[float]
    abs_floor: float = 0.0
    aggregate: str = "final"
    test: str = "superiority"
    part: str = ""


def _pairs(a: Sequence[float], b: Sequence[float]) -> tuple[list[float], list[float], int]:
    """The seeds where both values are finite (pairs stay pairs) and how many were dropped."""
    xa, xb = [], []
    n = min(len(a), len(b))
    for x, y in zip(a[:n], b[:n], strict=True):
        if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y)):
            xa.append(float(x))
            xb.append(float(y))
    return xa, xb, max(len(a), len(b)) - len(xa)


def _idx(n: int, cfg: VerdictSpec) -> np.ndarray | None:
    return bootstrap_indices(n, cfg.bootstrap, cfg.bootstrap_seed) if n >= 2 else None


def compare_metric(m: MetricInput, cfg: VerdictSpec) -> MetricComparison:
    """One metric's paired statistics; `points` as the rule decides it before Holm (p_adj = p)."""
    a, b, dropped = _pairs(m.arm_values, m.baseline_values)
    st = paired(a, b, m.abs_floor, cfg.margin, _idx(len(a), cfg))
    if st.n < cfg.min_seeds_for_test:  # exploratory: the direction only, no interval or test
        st = replace(st, ci=None, p_t=None, p_wilcoxon=None, p_tost=None)
    p = st.p_tost if m.test == "equivalence" else st.p_t
    mc = MetricComparison(
        name=m.name, better=m.better,
        arm_mean=float(np.mean(a)) if a else math.nan,
        baseline_mean=float(np.mean(b)) if b else math.nan,
        arm_values=a, baseline_values=b, rel_diff=st.effect, p_value=p, points="neither",
        n_pairs=st.n, n_dropped=dropped, ci=list(st.ci) if st.ci else None, p_adj=p,
        p_t=st.p_t, p_wilcoxon=st.p_wilcoxon, p_tost=st.p_tost, floor=m.abs_floor,
        mean_diff=st.mean_diff, aggregate=m.aggregate, test=m.test, part=m.part,
    )
    return replace(mc, points=points_of(mc, cfg))


def _signed(m: MetricComparison, v: float) -> float:
    """A relative effect signed so that positive is the claimed direction."""
    return v if m.better == "higher" else -v


def points_of(m: MetricComparison, cfg: VerdictSpec, effect: float | None = None,
              mean_diff: float | None = None, point_only: bool = False) -> str:
    """Which way one metric points: "claimed", "against" or "neither".

    Below cfg.min_seeds_for_test pairs (or with `point_only`, for bootstrap resamples) the point
    estimate decides; from there the interval must clear the margin and the adjusted p pass α.
    For an equivalence metric "claimed" means no worse than the baseline beyond the margin."""
    eff = m.rel_diff if effect is None else effect
    diff = m.mean_diff if mean_diff is None else mean_diff
    if m.n_pairs == 0 or eff is None or not math.isfinite(eff):
        return "neither"
    inside_floor = diff is not None and math.isfinite(diff) and abs(diff) <= m.floor
    s = _signed(m, eff)
    point = point_only or m.n_pairs < cfg.min_seeds_for_test or m.ci is None
    if m.test == "equivalence":
        if inside_floor:
            return "claimed"
        if point:
            return "against" if s < -cfg.margin else "claimed"
        lo, hi = sorted(_signed(m, v) for v in m.ci)  # type: ignore[union-attr]
        if hi < -cfg.margin:
            return "against"
        tost_ok = m.p_adj is not None and m.p_adj < cfg.alpha
        return "claimed" if tost_ok or lo > cfg.margin else "neither"
    if inside_floor:
        return "neither"
    if point:
        return "claimed" if s > cfg.margin else "against" if s < -cfg.margin else "neither"
    lo, hi = sorted(_signed(m, v) for v in m.ci)  # type: ignore[union-attr]
    sig = m.p_adj is not None and m.p_adj < cfg.alpha
    if lo > cfg.margin and sig:
        return "claimed"
    if hi < -cfg.margin and sig:
        return "against"
    return "neither"


def decide(metrics: Sequence[MetricComparison]) -> str:
    """All metrics claimed: supported; all against: refuted; else inconclusive."""
    if metrics and all(m.points == "claimed" for m in metrics):
        return "supported"
    if metrics and all(m.points == "against" for m in metrics):
        return "refuted"
    return "inconclusive"


def part_status(points: Sequence[str]) -> str:
    if points and all(p == "against" for p in points):
        return FAILS
    return HOLDS if points and all(p == "claimed" for p in points) else UNDECIDED


def both(s1: str, s2: str) -> str:
    if FAILS in (s1, s2):
        return FAILS
    return HOLDS if s1 == s2 == HOLDS else UNDECIDED


def parts_of(points: dict[str, list[str]], overrides: dict[str, str]) -> dict[str, str]:
    """C9's parts from its metrics' directions (and the parts decided by divergence or blow-ups):
    (a) = no worse than BN (equivalence) and better than plain; (b); (c)."""
    st = {k: overrides.get(k) or part_status(points.get(k, [])) for k in ("a_bn", "a_plain", "b", "c")}
    return {"a": both(st["a_bn"], st["a_plain"]), "a_vs_bn": st["a_bn"], "a_vs_plain": st["a_plain"],
            "b": st["b"], "c": st["c"]}


def verdict_of_parts(parts: dict[str, str]) -> str:
    """SCIENCE.md C9: supported when (a), (b), (c) all hold; refuted when (a) fails while (c) holds,
    or (c) fails; else inconclusive."""
    a, b, c = parts["a"], parts["b"], parts["c"]
    if a == b == c == HOLDS:
        return "supported"
    if (a == FAILS and c == HOLDS) or c == FAILS:
        return "refuted"
    return "inconclusive"


def _leaning(comps: Sequence[MetricComparison], overrides: dict[str, str] | None,
             points: Sequence[str] | None = None) -> tuple[str, dict[str, str]]:
    pts = list(points) if points is not None else [m.points for m in comps]
    if overrides is None:  # an ordinary claim: every metric one way
        fake = [replace(m, points=p) for m, p in zip(comps, pts, strict=True)]
        return decide(fake), {}
    by_part: dict[str, list[str]] = {}
    for m, p in zip(comps, pts, strict=True):
        by_part.setdefault(m.part, []).append(p)
    parts = parts_of(by_part, overrides)
    return verdict_of_parts(parts), parts


def stability(comps: Sequence[MetricComparison], leaning: str, cfg: VerdictSpec,
              overrides: dict[str, str] | None) -> float | None:
    """Share of seed-bootstrap resamples (pairs resampled together across the metrics) whose
    point-estimate verdict is `leaning`. None below the seeds a confirmatory verdict needs."""
    n = min((m.n_pairs for m in comps), default=0)
    if n < max(2, cfg.min_seeds_for_test) or any(m.n_pairs != n for m in comps):
        return None
    idx = bootstrap_indices(n, cfg.bootstrap, cfg.bootstrap_seed + 1)
    from bncli.verdict_stats import relative_diffs

    effects, diffs = [], []
    for m in comps:
        r = relative_diffs(m.arm_values, m.baseline_values, m.floor)
        d = np.asarray(m.arm_values) - np.asarray(m.baseline_values)
        effects.append(r[idx].mean(axis=1))
        diffs.append(d[idx].mean(axis=1))
    same = 0
    for k in range(idx.shape[0]):
        pts = [points_of(m, cfg, float(effects[j][k]), float(diffs[j][k]), point_only=True)
               for j, m in enumerate(comps)]
        same += _leaning(comps, overrides, pts)[0] == leaning
    return same / idx.shape[0]


def rule_text(cfg: VerdictSpec) -> str:
    return RULE.format(n=cfg.min_seeds_for_test, alpha=cfg.alpha, margin=cfg.margin, level=0.95)


def judge(c: Claim, cfg: VerdictSpec) -> Claim:
    """(Re)decide a claim from its metric comparisons (after Holm has set p_adj): points, the
    leaning, the evidence level, the verdict and its stability. Overrides stay what decided."""
    comps = [replace(m, points=points_of(m, cfg)) for m in c.metrics]
    parts_override = c.part_overrides if c.claim_kind == "parts" else None
    by_metrics = c.decided_by == "metrics" or parts_override is not None
    if by_metrics:  # a composite claim's parts decided outside the metrics are part of its rule
        leaning, parts = _leaning(comps, parts_override)
    else:
        leaning, parts = c.leaning, dict(c.parts)
    n = c.n_seeds
    checks = c.decided_by == "maths-check"
    confirm = checks or n >= cfg.min_seeds_for_test
    stab = stability(comps, leaning, cfg, parts_override) if by_metrics and comps else None
    return replace(c, metrics=comps, leaning=leaning, parts=parts,
                   verdict=leaning if confirm else EXPLORATORY,
                   evidence="check" if checks else "confirmatory" if confirm else EXPLORATORY,
                   stability=stab)


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
    decided_by: str | None = None,
    n_seeds: int | None = None,
    seeds: Sequence[int] | None = None,
    part_overrides: dict[str, str] | None = None,
) -> Claim:
    """Compare each metric and decide. `verdict_override` is for decisive outcomes (divergence, a
    blown-up landscape, a maths check); `decided_by` names it. `part_overrides` makes it a composite
    (C9) claim: part -> holds/fails decided outside the metrics."""
    comps = [compare_metric(m, cfg) for m in metrics]
    if n_seeds is None:
        # metrics decide: the seeds every metric has a finite pair on; an override: the paired runs
        by_metrics = min((m.n_pairs for m in comps), default=0)
        n_seeds = by_metrics if verdict_override is None or seeds is None else len(seeds)
    c = Claim(
        claim=claim, statement=statement, verdict="inconclusive", lr=lr, arm=arm, baseline=baseline,
        metrics=comps, rule=rule_text(cfg), note=note,
        leaning=verdict_override or "inconclusive",
        decided_by=decided_by or ("metrics" if verdict_override is None else "override"),
        n_seeds=n_seeds, seeds=list(seeds or []),
        claim_kind="parts" if part_overrides is not None else "all",
        part_overrides=dict(part_overrides or {}),
    )
    return judge(c, cfg)


def finalize(claims: Sequence[Claim], cfg: VerdictSpec) -> list[Claim]:
    """Holm's correction over every tested metric of the command's claims (metrics x learning rates
    x arms), then each claim re-decided on the adjusted p."""
    flat = [(i, j, m.p_value) for i, c in enumerate(claims) for j, m in enumerate(c.metrics)]
    adj = holm([p for _, _, p in flat])
    metrics = [list(c.metrics) for c in claims]
    for (i, j, _), pa in zip(flat, adj, strict=True):
        metrics[i][j] = replace(metrics[i][j], p_adj=pa)
    return [judge(replace(c, metrics=ms), cfg) for c, ms in zip(claims, metrics, strict=True)]


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


def pair_by_seed(a: Sequence[RunRecord], b: Sequence[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """The runs of two arms on the seeds both have, in seed order (a pair shares init and batches)."""
    sa = {r.seed: r for r in a}
    sb = {r.seed: r for r in b}
    common = sorted(set(sa) & set(sb))
    return [sa[s] for s in common], [sb[s] for s in common]


class ClaimGroup(NamedTuple):
    """One comparison of a claim: the learning rate, both arms, their runs paired by seed, notes."""

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
    """Every (lr, arm, baseline) comparison with runs on both sides, in spec order, paired by seed.

    `pairs` defaults to verdicts.comparison_pairs (each BN arm against the plain arm). With
    `drop_diverged` a seed where either arm diverged is left out (pairs stay pairs) and the notes
    say which.
    """
    groups = by_arm_lr(records)
    for lr in spec.train.lr:
        for arm, base in comparison_pairs(spec) if pairs is None else pairs:
            a, b = pair_by_seed(groups.get((arm, lr), []), groups.get((base, lr), []))
            if not a or not b:
                continue
            notes: list[str] = []
            if drop_diverged:
                for name, rs in ((arm, a), (base, b)):
                    bad = [r for r in rs if r.diverged]
                    if bad:
                        at = ", ".join(str(r.diverged_at) for r in bad)
                        notes.append(f"{name} diverged ({len(bad)}/{len(rs)} seeds, step {at}): "
                                     "those seeds are left out of both arms")
                keep = [i for i in range(len(a)) if not a[i].diverged and not b[i].diverged]
                a, b = [a[i] for i in keep], [b[i] for i in keep]
            yield ClaimGroup(lr, arm, base, list(a), list(b), notes)


def seeds_of(rs: Sequence[RunRecord]) -> list[int]:
    return [r.seed for r in rs]
