"""Claim C9 (SCIENCE.md): other normalizations smooth the landscape without fixing distributions.

Per ℓp arm and learning rate, against the plain arm AND the batchnorm arm (no claim without both):
(a) final train loss and best held-out error (MSE) no worse than BN's beyond the margin and better
than plain's; (b) the C2 shift metrics (those C2 is judged on) larger than BN's; (c) the C4
landscape metrics lower than plain's. Each part is decided by the shared verdict rule on its own
metrics: it *holds* when its metrics all point its way by the margin (for "no worse than BN":
every mean is at most the margin worse), *fails* when they all point the other way by the margin
(Welch with >= 3 seeds), and is *undecided* otherwise. C9 is supported when (a), (b) and (c) all hold; refuted when (a)
fails while (c) holds, or (c) fails; else inconclusive. LayerNorm and GroupNorm arms get the same
three parts in a table, reported but not judged (SCIENCE.md C9).

The data: (b) needs the C2 distribution probe (`ics_dist`) and (c) the landscape probe on the same
runs. The registry plugs C9 into `measure-ics` and `lipschitz` (with_c9): at plan time each of
their jobs on an arm C9 compares names the other analysis's probe too (extra_probes; the job spec
then keeps that probe's settings section), only when the spec has an ℓp arm, a plain arm and a
batchnorm arm, so specs without ℓp arms run exactly as before.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bncli.results import Claim, RunRecord
from bncli.spec import ArmSpec, Spec
from bncli.verdicts import MetricInput, by_arm_lr, compare_metric, make_claim

C9_STATEMENT = (
    "Normalizations that do not fix a unit's first two moments smooth the landscape without "
    "stabilizing distributions (Santurkar et al. 2018 §3.3): an ℓp-normalized net trains about as "
    "well as BN and better than plain, its layer inputs shift more than BN's, and its loss "
    "landscape is smoother than plain's"
)
# the analysis sections whose probes C9 combines, and the probe it adds to each one's jobs
EXTRA_PROBE = {"ics": "landscape", "lipschitz": "ics_dist"}
# norms compared the C9 way: lp is judged; layer and group are reported (SCIENCE.md C9)
JUDGED = ("lp",)
REPORTED = ("layer", "group")
HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"
RULE_NOTE = ("a part holds when all its metrics point its way by the margin (for 'no worse than BN': "
             "every mean within the margin) and fails when all point the other way; supported when (a), (b), "
             "(c) all hold, refuted when (a) fails while (c) holds, or (c) fails, else inconclusive; "
             "(b) uses C2's judged metrics, (c) C4's (means over measurement steps)")


def plain_arm(spec: Spec) -> ArmSpec | None:
    """C9's plain arm: the first arm without normalization or noise (the usual baseline)."""
    return next((a for a in spec.arms if a.is_baseline), None)


def batchnorm_arm(spec: Spec) -> ArmSpec | None:
    """C9's BN arm: the first plain BN arm (no noise; affine and before the nonlinearity preferred)."""
    bn = [a for a in spec.arms if a.norm == "batch" and not a.noisy]
    best = [a for a in bn if a.affine and a.position == "pre"]
    return (best or bn or [None])[0]


def c9_arms(spec: Spec, norms: Sequence[str] = JUDGED) -> list[ArmSpec]:
    """The arms of the given norms (no noise) that C9 compares with plain and batchnorm."""
    return [a for a in spec.arms if a.norm in norms and not a.noisy]


def c9_applies(spec: Spec, norms: Sequence[str] = JUDGED) -> bool:
    """The spec has an arm of `norms` (ℓp: C9 can be judged), a plain arm and a batchnorm arm."""
    return bool(c9_arms(spec, norms)) and plain_arm(spec) is not None and batchnorm_arm(spec) is not None


def compared_arm_names(spec: Spec) -> set[str]:
    """The arms whose jobs carry C9's extra probe: ℓp, LN and GN arms (LN/GN reported, not judged)
    with the plain and batchnorm arms, when C9 applies (an ℓp arm, a plain arm, a batchnorm arm)."""
    if not c9_applies(spec):
        return set()
    names = {a.name for a in c9_arms(spec, JUDGED + REPORTED)}
    return names | {plain_arm(spec).name, batchnorm_arm(spec).name}  # type: ignore[union-attr]


def extra_probes(spec: Spec, arm_name: str, section: str | None) -> tuple[str, ...]:
    """The probe C9 adds to one job at plan time: a measure-ics job of an arm C9 compares runs the
    landscape probe too, a lipschitz job the C2 distribution probe; every other job nothing."""
    if section not in EXTRA_PROBE or arm_name not in compared_arm_names(spec):
        return ()
    return (EXTRA_PROBE[section],)


@dataclass(frozen=True)
class _PlanWithC9:
    base: Any
    section: str | None

    def __call__(self, spec: Spec, arm: ArmSpec) -> tuple[str, ...]:
        return tuple(self.base(spec, arm)) + extra_probes(spec, arm.name, self.section)


@dataclass(frozen=True)
class _SummaryWithC9:
    base: Any

    def __call__(self, spec: Spec, records: Sequence[RunRecord], data: Any) -> Any:
        from bncli.analyses.base import Summary

        s = self.base(spec, records, data)
        return Summary(s.claims + c9_claims(spec, records), {**s.tables, **c9_tables(spec, records)})


def with_c9(analysis: Any) -> Any:
    """`analysis` (ics or lipschitz) with C9 plugged in: its extra probe on the arms C9 compares,
    its claims and its tables after the analysis's own (the registry does this: neither analysis
    imports C9)."""
    return dataclasses.replace(analysis, plan_probes=_PlanWithC9(analysis.plan_probes, analysis.section),
                               summarize=_SummaryWithC9(analysis.summarize),
                               claims=tuple(analysis.claims) + (("C9",) if "C9" not in analysis.claims else ()))


# --------------------------------------------------------------------------- judging


def _loss_metrics(a: list[RunRecord], b: list[RunRecord], vs: str, classification: bool) -> list[MetricInput]:
    out = [MetricInput(f"(a) final train loss vs {vs}", "lower",
                       [r.final_train_loss for r in a], [r.final_train_loss for r in b])]
    if classification:
        out.append(MetricInput(f"(a) best held-out error vs {vs}", "lower",
                               [1 - r.best_test_acc for r in a], [1 - r.best_test_acc for r in b]))
    else:
        out.append(MetricInput(f"(a) best held-out MSE vs {vs}", "lower",
                               [r.best_test_loss for r in a], [r.best_test_loss for r in b]))
    return out


def _status(points: Sequence[str]) -> str:
    """A part's status from its metrics' directions, as the verdict rule decides a claim: holds when
    every metric points the claimed way, fails when every one points against."""
    if points and all(p == "against" for p in points):
        return FAILS
    return HOLDS if points and all(p == "claimed" for p in points) else UNDECIDED


def _no_worse(metrics: Sequence[MetricInput], cfg: Any) -> str:
    """"No worse than the reference beyond the margin": holds when every metric's mean is at most
    the margin worse (a non-significant gap larger than that does not count as comparable); fails
    when every metric points against by the verdict rule (beyond the margin and, with enough
    seeds, Welch)."""
    comps = [compare_metric(m, cfg) for m in metrics]
    if comps and all(c.points == "against" for c in comps):
        return FAILS
    worse = [c.rel_diff if c.better == "lower" else -c.rel_diff for c in comps]
    return HOLDS if comps and all(math.isfinite(w) and w <= cfg.margin for w in worse) else UNDECIDED


def _both(s1: str, s2: str) -> str:
    if FAILS in (s1, s2):
        return FAILS
    return HOLDS if s1 == s2 == HOLDS else UNDECIDED


def verdict_of(a: str, b: str, c: str) -> str:
    """SCIENCE.md C9: supported when (a), (b), (c) all hold; refuted when (a) fails while (c) holds,
    or (c) fails; else inconclusive."""
    if a == b == c == HOLDS:
        return "supported"
    if (a == FAILS and c == HOLDS) or c == FAILS:
        return "refuted"
    return "inconclusive"


def _has(rs: Sequence[RunRecord], probe: str) -> bool:
    return bool(rs) and all(probe in r.probes for r in rs)


def c9_parts(spec: Spec, records: Sequence[RunRecord], arm: str, lr: float) -> dict[str, Any] | None:
    """The three parts of C9 for one arm at one learning rate (None when data are missing):
    each part's status, its metric inputs, and notes."""
    from bncli.analyses.ics import C2_METRICS, run_dist_mean
    from bncli.analyses.landscape import C4_METRICS, run_landscape_stats

    plain, bn = plain_arm(spec), batchnorm_arm(spec)
    if plain is None or bn is None:
        return None
    groups = by_arm_lr(records)
    x, p, n = (groups.get((name, lr), []) for name in (arm, plain.name, bn.name))
    if not (x and p and n) or not (_has(x, "ics_dist") and _has(n, "ics_dist")
                                   and _has(x, "landscape") and _has(p, "landscape")):
        return None
    cfg = spec.verdict
    notes: list[str] = []
    classification = any(r.test_acc and r.test_acc[0] is not None for r in records)
    # (a): training, diverged runs left out of the metrics; divergence at every seed decides
    fin = {name: [r for r in rs if not r.diverged] for name, rs in ((arm, x), (plain.name, p), (bn.name, n))}
    div = {name: sum(r.diverged for r in rs) / len(rs) for name, rs in ((arm, x), (plain.name, p), (bn.name, n))}
    m_bn = _loss_metrics(fin[arm], fin[bn.name], bn.name, classification)
    m_plain = _loss_metrics(fin[arm], fin[plain.name], plain.name, classification)
    a_bn = _no_worse(m_bn, cfg)
    a_plain = _status([compare_metric(m, cfg).points for m in m_plain])
    if div[arm] == 1 and div[bn.name] < 1:
        a_bn = FAILS
    if div[arm] == 1 and div[plain.name] < 1:
        a_plain = FAILS
    if div[plain.name] == 1 and div[arm] == 0:
        a_plain = HOLDS
        notes.append(f"{plain.name} diverged at every seed, {arm} trained")
    if any(div.values()):
        notes.append("diverged runs left out of (a) and (b): " + ", ".join(
            f"{k} {v:.0%}" for k, v in div.items() if v))
    part_a = _both(a_bn, a_plain)
    # (b): the C2 metrics, larger than BN's
    m_b = [MetricInput(f"(b) {label} vs {bn.name}", "higher",
                       [run_dist_mean(r, key) for r in fin[arm]], [run_dist_mean(r, key) for r in fin[bn.name]])
           for key, label in C2_METRICS]
    part_b = _status([compare_metric(m, cfg).points for m in m_b])
    # (c): the C4 metrics, lower than plain's; a landscape that blew up counts against its arm
    sx = [run_landscape_stats(r) for r in x]
    sp = [run_landscape_stats(r) for r in p]
    m_c = [MetricInput(f"(c) {label} vs {plain.name}", "lower",
                       [s[f"{key}_mean"] for s in sx], [s[f"{key}_mean"] for s in sp])
           for key, label in C4_METRICS]
    part_c = _status([compare_metric(m, cfg).points for m in m_c])
    bx, bp = (int(sum(s["n_nonfinite"] for s in ss)) for ss in (sx, sp))
    if bx and not bp:
        part_c = FAILS
        notes.append(f"only {arm}'s landscape blew up (non-finite on the η′ grid): (c) fails")
    elif bp and not bx:
        part_c = HOLDS
        notes.append(f"only {plain.name}'s landscape blew up (non-finite on the η′ grid): (c) holds")
    return {"a": part_a, "a_vs_bn": a_bn, "a_vs_plain": a_plain, "b": part_b, "c": part_c,
            "metrics": m_bn + m_plain + m_b + m_c, "notes": notes, "plain": plain.name, "bn": bn.name}


def _part_text(parts: dict[str, Any]) -> str:
    return (f"(a) {parts['a']} (no worse than {parts['bn']} beyond the margin: {parts['a_vs_bn']}; "
            f"better than {parts['plain']}: {parts['a_vs_plain']}); (b) {parts['b']}; (c) {parts['c']}")


def c9_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C9 per ℓp arm and learning rate, against the plain arm and the batchnorm arm."""
    out: list[Claim] = []
    for lr in spec.train.lr:
        for arm in c9_arms(spec):
            parts = c9_parts(spec, records, arm.name, lr)
            if parts is None:
                continue
            verdict = verdict_of(parts["a"], parts["b"], parts["c"])
            note = "; ".join([_part_text(parts), *parts["notes"], RULE_NOTE])
            out.append(make_claim("C9", C9_STATEMENT, lr, arm.name, f"{parts['plain']} & {parts['bn']}",
                                  parts["metrics"], spec.verdict, note, verdict))
    return out


def c9_reported(spec: Spec, records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """LayerNorm and GroupNorm arms compared the C9 way: reported, not judged (SCIENCE.md C9)."""
    rows = []
    for lr in spec.train.lr:
        for arm in c9_arms(spec, REPORTED):
            parts = c9_parts(spec, records, arm.name, lr)
            if parts is None:
                continue
            comps = [compare_metric(m, spec.verdict) for m in parts["metrics"]]
            rows.append({"lr": lr, "arm": arm.name, "a": parts["a"], "b": parts["b"], "c": parts["c"],
                         "would_be": verdict_of(parts["a"], parts["b"], parts["c"]),
                         "metrics": [{"name": c.name, "arm_mean": c.arm_mean, "baseline_mean": c.baseline_mean,
                                      "points": c.points} for c in comps]})
    return rows


def c9_missing(spec: Spec, records: Sequence[RunRecord]) -> str | None:
    """Why a spec with ℓp arms got no C9 verdict (None when it did, or has no ℓp arm)."""
    if not c9_arms(spec):
        return None
    if plain_arm(spec) is None or batchnorm_arm(spec) is None:
        return "no C9 verdict: C9 compares each ℓp arm with a plain arm and a batchnorm arm; add both"
    if any(c9_parts(spec, records, a.name, lr) for a in c9_arms(spec) for lr in spec.train.lr):
        return None
    return ("no C9 verdict: the runs lack the C2 distribution probe or the landscape probe on the "
            "arms C9 compares")


def c9_tables(spec: Spec, records: Sequence[RunRecord]) -> dict[str, Any]:
    """Tables for a summary, only for specs with an ℓp arm (others get nothing new)."""
    if not c9_arms(spec):
        return {}
    out: dict[str, Any] = {}
    rows = c9_reported(spec, records)
    if rows:
        out["c9_reported"] = rows
    missing = c9_missing(spec, records)
    if missing:
        out["c9_note"] = missing
    return out

