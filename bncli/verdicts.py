"""The one verdict engine (SCIENCE.md, Verdicts), shared by every analysis and public as
`bncli.judge`: per-seed metrics of two arms, paired by seed -> per metric the log-ratio (or
difference) effect, its 95 % t-interval and two one-sided paired t-tests against the margin ->
intersection-union within a claim -> one p per claim -> Holm across the command's claims ->
supported / refuted / inconclusive, or `exploratory` below the seeds a confirmatory verdict needs.
A seed whose value is not finite (a diverged run) counts against its arm. Also: the comparisons a
claim is made over (each normalized arm against the plain arm)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from bncli.results import Claim, MetricComparison, RunRecord
from bncli.verdict_stats import DIFFERENCE, RATIO, SCALES, geometric_mean, holm, sides

if TYPE_CHECKING:
    from bncli.spec import Spec

RULE = (
    "per seed l = ln((arm + f)/(baseline + f)) (f: the metric's resolution; signed metrics: the "
    "difference), same init and batches; per metric two one-sided paired t-tests of mean l beyond "
    "the margin ±ln(1 + {margin:.0%}) (spread floored by f; the interval shown is the matching 95 % "
    "t-interval); within a claim intersection-union (a side's p is the largest of its metrics'); "
    "p = 2·min of the two sides, Holm across the command's claims; supported: adjusted p < {alpha} "
    "on the claimed side, refuted: on the other side, else inconclusive. A diverged or non-finite "
    "seed counts against its arm. Fewer than {n} paired seeds: exploratory (the direction only)."
)
EXPLORATORY = "exploratory"
HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"
SUPERIORITY, NON_INFERIORITY = "superiority", "non-inferiority"
C9_PARTS = ("a_bn", "a_plain", "b", "c")


@dataclass(frozen=True)
class Rule:
    """The engine's settings: margin m (relative, ratio scale), level α, seeds from which a verdict
    is confirmatory. VerdictSpec (a spec's `verdict:` section) carries the same names."""

    margin: float = 0.10
    alpha: float = 0.05
    min_seeds_for_test: int = 3


@dataclass(frozen=True)
class MetricInput:
    """Per-seed values of one metric for the arm and the baseline arm, aligned by seed.

    `floor`: the metric's resolution f (ratio scale: l = ln((a+f)/(b+f)); both scales: the spread
    is floored by it). `scale`: "ratio" (positive values) or "difference" (signed; `margin` is then
    absolute, in the metric's units). `test`: "superiority" (the claimed direction by more than the
    margin) or "non-inferiority" (no worse than the baseline beyond the margin). `aggregate`: how a
    run's value was made from its measurement steps (shown). `part`: C9's part. A value that is
    None or not finite is a run that did not finish: it counts against its side."""

    name: str
    better: str  # "lower" or "higher" for the arm, as the claim predicts
    arm_values: Sequence[float | None]
    baseline_values: Sequence[float | None]
    floor: float = 0.0
    aggregate: str = "final"
    test: str = SUPERIORITY
    part: str = ""
    scale: str = RATIO
    margin: float | None = None


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(float(v))


def check_metric(m: MetricInput, strict: bool = False) -> None:
    """A clear ValueError naming the metric for input the engine cannot judge. `strict` (the
    public API): NaN is an error too (write None for a run that did not finish)."""
    where = f"metric {m.name!r}"
    if m.better not in ("lower", "higher"):
        raise ValueError(f"{where}: better must be 'lower' or 'higher', not {m.better!r}")
    if m.scale not in SCALES:
        raise ValueError(f"{where}: scale must be 'ratio' or 'difference', not {m.scale!r}")
    if m.test not in (SUPERIORITY, NON_INFERIORITY):
        raise ValueError(f"{where}: test must be 'superiority' or 'non-inferiority', not {m.test!r}")
    if len(m.arm_values) != len(m.baseline_values):
        raise ValueError(f"{where}: arm has {len(m.arm_values)} values, baseline "
                         f"{len(m.baseline_values)} (paired by position: they must be equal)")
    if not (isinstance(m.floor, (int, float)) and math.isfinite(m.floor) and m.floor >= 0):
        raise ValueError(f"{where}: floor must be a finite number >= 0, not {m.floor!r}")
    if m.scale == DIFFERENCE and (m.margin is None or not math.isfinite(m.margin) or m.margin < 0):
        raise ValueError(f"{where}: a difference-scale metric needs an absolute margin >= 0")
    for side, vals in (("arm", m.arm_values), ("baseline", m.baseline_values)):
        for i, v in enumerate(vals):
            if v is None:
                continue
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: {side} value {i} is not a number: {v!r}") from None
            if strict and math.isnan(x):
                raise ValueError(f"{where}: {side} value {i} is NaN (write None for a run that did "
                                 "not finish: it counts against its side)")
            if m.scale == RATIO and math.isfinite(x) and x + m.floor <= 0:
                raise ValueError(f"{where}: {side} value {i} = {x:g} is not positive on the ratio "
                                 f"scale (floor {m.floor:g}): give a floor, or scale 'difference' for "
                                 "a signed metric")


def _delta(m: MetricInput, rule: Rule) -> float:
    return math.log1p(rule.margin) if m.scale == RATIO else float(m.margin or 0.0)


def compare_metric(m: MetricInput, rule: Rule) -> MetricComparison:
    """One metric's paired statistics (SCIENCE.md): points decided at the unadjusted level."""
    check_metric(m)
    n = len(m.arm_values)
    good = [i for i in range(n) if _finite(m.arm_values[i]) and _finite(m.baseline_values[i])]
    bad_arm = sum(not _finite(m.arm_values[i]) for i in range(n))
    bad_base = sum(not _finite(m.baseline_values[i]) for i in range(n))
    a = [float(m.arm_values[i]) for i in good]  # type: ignore[arg-type]
    b = [float(m.baseline_values[i]) for i in good]  # type: ignore[arg-type]
    d = _delta(m, rule)
    s = -1.0 if m.better == "lower" else 1.0  # the claimed sign of the effect
    # claimed side: s·mean > d (superiority) or s·mean > −d (non-inferiority); against: the mirror
    edge = d if m.test == SUPERIORITY else -d
    # the bounds of the two one-sided tests: superiority ±d; non-inferiority the margin on the
    # worse side, both ways (claimed: no worse than it; against, the mirror: worse than it)
    lo, hi = (-d, d) if m.test == SUPERIORITY else (d, d) if s < 0 else (-d, -d)
    st = sides(a, b, m.floor, m.scale, lo, hi)
    p_cl, p_ag = (st.p_less, st.p_greater) if s < 0 else (st.p_greater, st.p_less)
    if bad_arm:  # a run of the arm that did not finish cannot support the claim for it
        p_cl = 1.0
    if bad_base:
        p_ag = 1.0
    k = sum(s * e > edge for e in st.per_seed)
    ratio = m.scale == RATIO
    eff = math.expm1(st.mean) if ratio and st.n else st.mean
    ci = [math.expm1(v) for v in st.ci] if ratio and st.ci else list(st.ci) if st.ci else None
    centre = (lambda v: geometric_mean(v, m.floor)) if ratio else (lambda v: sum(v) / len(v) if v else math.nan)
    return MetricComparison(
        name=m.name, better=m.better, arm_mean=centre(a), baseline_mean=centre(b),
        arm_values=[float(v) if v is not None else math.nan for v in m.arm_values],
        baseline_values=[float(v) if v is not None else math.nan for v in m.baseline_values],
        effect=eff, points="neither", n_pairs=st.n, n_seeds=n, nonfinite_arm=bad_arm,
        nonfinite_baseline=bad_base, ci=ci, p_claimed=p_cl, p_against=p_ag, p_adj=None,
        floor=m.floor, aggregate=m.aggregate, test=m.test, part=m.part, scale=m.scale, margin=d,
        beyond=[int(k), n], identical=st.identical, sd_floor=st.sd_min,
    )


def _p(v: float | None) -> float:
    return 1.0 if v is None else v


def _signed_mean(m: MetricComparison) -> float:
    """The mean effect on the test's scale, signed so that positive is the claimed way."""
    if m.n_pairs == 0 or not math.isfinite(m.effect):
        return math.nan
    e = math.log1p(m.effect) if m.scale == RATIO else m.effect
    return e if m.better == "higher" else -e


def point_of(m: MetricComparison) -> str:
    """Which way a metric's point estimate points (exploratory claims: the direction only); an
    effect within the spread its resolution allows points neither way."""
    e = _signed_mean(m)
    d = m.margin or 0.0
    if not math.isfinite(e):
        return "against" if m.nonfinite_arm and not m.nonfinite_baseline else "neither"
    if abs(e) <= m.sd_floor and m.test != NON_INFERIORITY:
        return "neither"
    if m.test == NON_INFERIORITY:
        return "against" if e < -d or m.nonfinite_arm else "claimed"
    if e > d and not m.nonfinite_arm:
        return "claimed"
    if e < -d and not m.nonfinite_baseline:
        return "against"
    return "neither"


def points_of(m: MetricComparison, rule: Rule, factor: float, confirm: bool) -> str:
    """A metric's direction: by its one-sided tests at the claim's Holm factor (2·p·factor < α),
    or by the point estimate below the seeds a test needs."""
    if not confirm:
        return point_of(m)
    if 2.0 * _p(m.p_claimed) * factor < rule.alpha:
        return "claimed"
    if 2.0 * _p(m.p_against) * factor < rule.alpha:
        return "against"
    return "neither"


def _iut(ms: Sequence[MetricComparison]) -> tuple[float, float]:
    """Intersection-union: a side holds when every metric does; its p is the largest."""
    if not ms:
        return 1.0, 1.0
    return max(_p(m.p_claimed) for m in ms), max(_p(m.p_against) for m in ms)


def part_ps(metrics: Sequence[MetricComparison], overrides: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    """C9: each part's (P_claimed, P_against); a part decided outside the metrics (divergence,
    blown-up landscapes) is certain: holds (0, 1), fails (1, 0)."""
    out = {}
    for part in C9_PARTS:
        o = overrides.get(part)
        out[part] = (0.0, 1.0) if o == HOLDS else (1.0, 0.0) if o == FAILS else \
            _iut([m for m in metrics if m.part == part])
    return out


def claim_sides(metrics: Sequence[MetricComparison], kind: str,
                overrides: Mapping[str, str] | None = None) -> tuple[float, float]:
    """A claim's (P_claimed, P_against). An ordinary claim: intersection-union over its metrics.
    C9 (kind "parts"): supported needs every part (intersection-union over all); refuted needs (c)
    to fail, or (a) to fail while (c) holds (a union of two routes, each Bonferroni-corrected)."""
    if kind != "parts":
        return _iut(metrics)
    pp = part_ps(metrics, overrides or {})
    p_cl = max(v[0] for v in pp.values())
    a_fails = min(1.0, 2.0 * min(pp["a_bn"][1], pp["a_plain"][1]))
    route_a = max(a_fails, pp["c"][0])
    return p_cl, min(1.0, 2.0 * min(pp["c"][1], route_a))


def part_status(points: Sequence[str]) -> str:
    if points and all(p == "against" for p in points):
        return FAILS
    return HOLDS if points and all(p == "claimed" for p in points) else UNDECIDED


def both(s1: str, s2: str) -> str:
    if FAILS in (s1, s2):
        return FAILS
    return HOLDS if s1 == s2 == HOLDS else UNDECIDED


def parts_of(points: dict[str, list[str]], overrides: Mapping[str, str]) -> dict[str, str]:
    """C9's parts from its metrics' directions (and the parts decided by divergence or blow-ups):
    (a) = no worse than BN (non-inferiority) and better than plain; (b); (c)."""
    st = {k: overrides.get(k) or part_status(points.get(k, [])) for k in C9_PARTS}
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


def _tested_parts(metrics: Sequence[MetricComparison], overrides: Mapping[str, str], rule: Rule,
                  factor: float) -> dict[str, str]:
    """C9's part statuses at the claim's Holm factor (consistent with its verdict)."""
    st = {}
    for part, (pc, pa) in part_ps(metrics, overrides).items():
        st[part] = HOLDS if 2 * pc * factor < rule.alpha else FAILS if 2 * pa * factor < rule.alpha else UNDECIDED
    return {"a": both(st["a_bn"], st["a_plain"]), "a_vs_bn": st["a_bn"], "a_vs_plain": st["a_plain"],
            "b": st["b"], "c": st["c"]}


def rule_text(rule: Any) -> str:
    return RULE.format(n=rule.min_seeds_for_test, alpha=rule.alpha, margin=rule.margin)


def _rule(cfg: Any) -> Rule:
    return Rule(float(cfg.margin), float(cfg.alpha), int(cfg.min_seeds_for_test))


def judge(c: Claim, cfg: Any) -> Claim:
    """(Re)decide a claim from its metric comparisons and its p_adj (set by finalize; the
    unadjusted p before): points, parts, the leaning, the evidence level and the verdict.
    Overrides (divergence, maths checks, ...) stay what decided."""
    rule = _rule(cfg)
    confirm = c.n_seeds >= rule.min_seeds_for_test
    checks = c.decided_by == "maths-check"
    parts_kind = c.claim_kind == "parts"
    by_metrics = c.decided_by == "metrics" or parts_kind
    factor = 1.0
    if c.p is not None and c.p_adj is not None:
        factor = c.p_adj / c.p if c.p > 0 else max(1, c.family)
    # each metric: its direction, and its two-sided p at the claim's Holm factor (shown)
    comps = [replace(m, points=points_of(m, rule, factor, confirm and by_metrics),
                     p_adj=None if m.p_value is None or m.p_claimed is None else min(1.0, m.p_value * factor))
             for m in c.metrics]
    parts = dict(c.parts)
    if by_metrics and confirm:
        p_adj = c.p_adj if c.p_adj is not None else c.p
        side_claimed = _p(c.p_claimed) <= _p(c.p_against)
        decided = p_adj is not None and p_adj < rule.alpha
        leaning = ("supported" if side_claimed else "refuted") if decided else "inconclusive"
        if parts_kind:
            parts = _tested_parts(comps, c.part_overrides, rule, factor)
    elif by_metrics:  # exploratory: which way the point estimates point
        if parts_kind:
            by_part: dict[str, list[str]] = {}
            for m in comps:
                by_part.setdefault(m.part, []).append(m.points)
            parts = parts_of(by_part, c.part_overrides)
            leaning = verdict_of_parts(parts)
        else:
            pts = [m.points for m in comps]
            leaning = ("supported" if pts and all(p == "claimed" for p in pts) else
                       "refuted" if pts and all(p == "against" for p in pts) else "inconclusive")
    else:
        leaning = c.leaning
    ks = [m.beyond for m in comps if m.beyond]
    beyond = min(ks, key=lambda kn: (kn[0] / kn[1] if kn[1] else 0.0)) if ks else None
    ok = checks or confirm
    return replace(c, metrics=comps, leaning=leaning, parts=parts, beyond=beyond,
                   verdict=leaning if ok else EXPLORATORY,
                   evidence="check" if checks else "confirmatory" if confirm else EXPLORATORY)


def _nonfinite(metrics: Sequence[MetricComparison], arm: str, baseline: str) -> dict[str, int]:
    out = {arm: max((m.nonfinite_arm for m in metrics), default=0),
           baseline: max((m.nonfinite_baseline for m in metrics), default=0)}
    return {k: v for k, v in out.items() if v}


def mask_diverged(metrics: Sequence[MetricInput], a: Sequence[RunRecord],
                  b: Sequence[RunRecord]) -> list[MetricInput]:
    """Each metric with the values of diverged runs set to NaN: a diverged run counts against its
    arm (SCIENCE.md), however finite what it measured before diverging."""
    def cut(vals: Sequence[float | None], rs: Sequence[RunRecord]) -> list[float | None]:
        return [math.nan if i < len(rs) and rs[i].diverged else v for i, v in enumerate(vals)]

    return [replace(m, arm_values=cut(m.arm_values, a), baseline_values=cut(m.baseline_values, b))
            for m in metrics]


def make_claim(
    claim: str,
    statement: str,
    lr: float,
    arm: str,
    baseline: str,
    metrics: Sequence[MetricInput],
    cfg: Any,
    note: str = "",
    verdict_override: str | None = None,
    decided_by: str | None = None,
    n_seeds: int | None = None,
    seeds: Sequence[int] | None = None,
    part_overrides: dict[str, str] | None = None,
    runs: tuple[Sequence[RunRecord], Sequence[RunRecord]] | None = None,
) -> Claim:
    """Compare each metric and decide (before Holm: finalize adjusts across the command).
    `verdict_override` is for decisive outcomes (divergence, a blown-up landscape, a maths check);
    `decided_by` names it. `part_overrides` makes it a composite (C9) claim: part -> holds/fails
    decided outside the metrics. `runs` (arm runs, baseline runs, paired): a diverged run's values
    count against its arm."""
    rule = _rule(cfg)
    if runs is not None:
        metrics = mask_diverged(metrics, *runs)
    comps = [compare_metric(m, rule) for m in metrics]
    if n_seeds is None:
        n_seeds = max((m.n_seeds for m in comps), default=0) if seeds is None or verdict_override is None \
            else len(seeds)
    kind = "parts" if part_overrides is not None else "all"
    by_metrics = verdict_override is None or kind == "parts"
    p_cl = p_ag = p = None
    if by_metrics and comps and n_seeds >= rule.min_seeds_for_test:
        p_cl, p_ag = claim_sides(comps, kind, part_overrides)
        p = min(1.0, 2.0 * min(p_cl, p_ag))
    nonfinite = _nonfinite(comps, arm, baseline)
    if nonfinite and by_metrics:
        said = ", ".join(f"{k} {v}/{n_seeds}" for k, v in nonfinite.items())
        note = (note + "; " if note else "") + (f"not finite (diverged or blown up): {said} seed(s), "
                                                "counted against their arm")
    c = Claim(
        claim=claim, statement=statement, verdict="inconclusive", lr=lr, arm=arm, baseline=baseline,
        metrics=comps, rule=rule_text(rule), note=note,
        leaning=verdict_override or "inconclusive",
        decided_by=decided_by or ("metrics" if verdict_override is None else "override"),
        n_seeds=n_seeds, seeds=list(seeds or []), p_claimed=p_cl, p_against=p_ag, p=p,
        nonfinite=nonfinite, claim_kind=kind, part_overrides=dict(part_overrides or {}),
    )
    return judge(c, cfg)


def finalize(claims: Sequence[Claim], cfg: Any) -> list[Claim]:
    """Holm's correction over the command's claims that a test decides (claims x learning rates x
    arms, confirmatory, not decided by an override), then each claim re-decided on its p_adj."""
    ps = [c.p for c in claims]
    adj = holm(ps)
    family = sum(p is not None for p in adj)
    return [judge(replace(c, p_adj=pa, family=family if pa is not None else 0), cfg)
            for c, pa in zip(claims, adj, strict=True)]


# --------------------------------------------------------------------------- the public engine


def _metric_input(i: int, d: Any) -> MetricInput:
    if isinstance(d, MetricInput):
        return d
    if not isinstance(d, Mapping):
        raise ValueError(f"metric {i}: a dict with name, better, arm, baseline (got {type(d).__name__})")
    known = {"name", "better", "arm", "baseline", "floor", "scale", "margin", "test", "aggregate"}
    extra = sorted(set(d) - known)
    name = str(d.get("name", f"metric {i}"))
    if extra:
        raise ValueError(f"metric {name!r}: unknown key(s) {', '.join(map(repr, extra))} "
                         f"(known: {', '.join(sorted(known))})")
    for key in ("better", "arm", "baseline"):
        if key not in d:
            raise ValueError(f"metric {name!r}: {key!r} is missing")
    arm, base = d["arm"], d["baseline"]
    if isinstance(arm, (str, bytes)) or isinstance(base, (str, bytes)):
        raise ValueError(f"metric {name!r}: arm and baseline are sequences of numbers")
    test = d.get("test", SUPERIORITY)
    return MetricInput(name, d["better"], list(arm), list(base), float(d.get("floor", 0.0)),
                       str(d.get("aggregate", "per run")), test, "", str(d.get("scale", RATIO)),
                       None if d.get("margin") is None else float(d["margin"]))


def judge_claims(claims: Sequence[Any], margin: float = 0.1, alpha: float = 0.05,
                 min_seeds: int = 3) -> list[Claim]:
    """bncli.judge: verdicts on paired measurements from anywhere, by the rule bncli's own
    analyses use (SCIENCE.md, Verdicts).

    `claims`: a list of claims, each a list of metrics (or a dict {"name": ..., "metrics": [...]}).
    A metric is a dict: `name`; `better`: "lower" | "higher" (what the claim predicts for the arm);
    `arm`, `baseline`: per-seed values paired by position (None: a run that did not finish, which
    counts against its side); optional `floor` (the metric's resolution), `scale`: "ratio"
    (default, positive values) or "difference" (signed values, with an absolute `margin`), `test`:
    "superiority" (default) or "non-inferiority". Holm runs across the list. Returns one
    results.Claim per claim: `.verdict`, `.p_claimed`, `.p_against`, `.p_adj`, `.family`, and per
    metric `.effect`, `.ci`, `.beyond` (k, n). Bad input is a ValueError naming the metric."""
    if not (isinstance(margin, (int, float)) and 0 <= margin < 1e6):
        raise ValueError(f"margin must be a number >= 0, not {margin!r}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    if isinstance(claims, Mapping) or isinstance(claims, (str, bytes)):
        raise ValueError("claims: a list of claims, each a list of metric dicts")
    rule = Rule(float(margin), float(alpha), int(min_seeds))
    out = []
    for ci, c in enumerate(claims):
        name, ms = (c.get("name", f"claim {ci + 1}"), c.get("metrics")) if isinstance(c, Mapping) \
            else (f"claim {ci + 1}", c)
        if not isinstance(ms, Sequence) or isinstance(ms, (str, bytes)) or not ms:
            raise ValueError(f"{name}: a non-empty list of metrics")
        inputs = [_metric_input(i, m) for i, m in enumerate(ms)]
        for m in inputs:
            check_metric(m, strict=True)
        out.append(make_claim(str(name), str(name), math.nan, "arm", "baseline", inputs, rule))
    return finalize(out, rule)


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
) -> Iterator[ClaimGroup]:
    """Every (lr, arm, baseline) comparison with runs on both sides, in spec order, paired by seed.
    `pairs` defaults to verdicts.comparison_pairs (each BN arm against the plain arm). No seed is
    left out: a diverged run counts against its arm (make_claim's `runs`)."""
    groups = by_arm_lr(records)
    for lr in spec.train.lr:
        for arm, base in comparison_pairs(spec) if pairs is None else pairs:
            a, b = pair_by_seed(groups.get((arm, lr), []), groups.get((base, lr), []))
            if not a or not b:
                continue
            yield ClaimGroup(lr, arm, base, list(a), list(b), [])


def seeds_of(rs: Sequence[RunRecord]) -> list[int]:
    return [r.seed for r in rs]
