"""Claim C9 (SCIENCE.md): other normalizations smooth the landscape without fixing distributions.

Per ℓp arm and learning rate, against the plain arm AND the batchnorm arm (no claim without both):
(a) final train loss and best held-out error (MSE) no worse than BN's beyond the margin and better
than plain's; (b) the C2 shift metrics (those C2 is judged on) larger than BN's; (c) the C4
landscape metrics lower than plain's. Each part is decided by the shared verdict rule on its own
metrics, paired by seed: it *holds* when its metrics all point its way (for "no worse than BN": a
one-sided non-inferiority test of ln(ℓp/BN) against +ln(1 + m)), *fails* when they all point the
other way (for "no worse than BN": the mirror test, worse than BN beyond the margin), and is
*undecided* otherwise. C9 is supported when (a), (b) and (c) all hold; refuted when (a) fails while
(c) holds, or (c) fails; else inconclusive — one test per claim, inside the command's Holm across
claims (verdicts.claim_sides). LayerNorm and GroupNorm arms get the same
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
from dataclasses import dataclass, replace
from typing import Any

from bncli.claims import ClaimInfo
from bncli.results import Claim, RunRecord
from bncli.spec import ArmSpec, Spec
from bncli.stats import finite_mean
from bncli.verdict_stats import binomial_floor
from bncli.verdicts import (
    FAILS,
    HOLDS,
    NON_INFERIORITY,
    MetricInput,
    by_arm_lr,
    make_claim,
    mask_diverged,
    verdict_of_parts,
)

C9_STATEMENT = (
    "Normalizations that do not fix a unit's first two moments smooth the landscape without "
    "stabilizing distributions (Santurkar et al. 2018 §3.3): an ℓp-normalized net trains about as "
    "well as BN and better than plain, its layer inputs shift more than BN's, and its loss "
    "landscape is smoother than plain's"
)
# the analysis sections whose probes C9 combines, and the probe it adds to each one's jobs
EXTRA_PROBE = {"ics": "landscape", "lipschitz": "ics_dist"}


def norms_with(role: str) -> tuple[str, ...]:
    """The norms compared the C9 way, by their entries' c9_role (read when called, so a norm
    registered later counts): "judged" (lp) or "reported" (layer, group); SCIENCE.md C9."""
    from bncli.norms import NORMS

    return tuple(n for n, info in NORMS.items() if info.c9_role == role)
RULE_NOTE = ("paired by seed over the three arms; a part holds when all its metrics point its way (the "
             "verdict rule: one-sided t-tests against the margin, intersection-union; 'no worse than BN' by a "
             "non-inferiority test against +ln(1 + m)) and fails when all point the other way (the mirror "
             "tests); supported when (a), (b), "
             "(c) all hold, refuted when (a) fails while (c) holds, or (c) fails, else inconclusive; "
             "(b) uses C2's judged metrics, (c) C4's (medians over measurement steps)")


def plain_arm(spec: Spec) -> ArmSpec | None:
    """C9's plain arm: the first arm without normalization or noise (the usual baseline)."""
    return next((a for a in spec.arms if a.is_baseline), None)


def batchnorm_arm(spec: Spec) -> ArmSpec | None:
    """C9's BN arm: the first plain BN arm (no noise; affine and before the nonlinearity preferred)."""
    bn = [a for a in spec.arms if a.norm_info.reference and not a.noisy]
    best = [a for a in bn if a.affine and a.position == "pre"]
    return (best or bn or [None])[0]


def c9_arms(spec: Spec, norms: Sequence[str] | None = None) -> list[ArmSpec]:
    """The arms of the given norms (no noise) that C9 compares with plain and batchnorm."""
    wanted = norms_with("judged") if norms is None else norms
    return [a for a in spec.arms if a.norm in wanted and not a.noisy]


def c9_applies(spec: Spec, norms: Sequence[str] | None = None) -> bool:
    """The spec has an arm of `norms` (ℓp: C9 can be judged), a plain arm and a batchnorm arm."""
    return bool(c9_arms(spec, norms)) and plain_arm(spec) is not None and batchnorm_arm(spec) is not None


def compared_arm_names(spec: Spec) -> set[str]:
    """The arms whose jobs carry C9's extra probe: ℓp, LN and GN arms (LN/GN reported, not judged)
    with the plain and batchnorm arms, when C9 applies (an ℓp arm, a plain arm, a batchnorm arm)."""
    if not c9_applies(spec):
        return set()
    names = {a.name for a in c9_arms(spec, norms_with("judged") + norms_with("reported"))}
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
        n_test = getattr(data, "n_test", None)
        return Summary(s.claims + c9_claims(spec, records, n_test), {**s.tables, **c9_tables(spec, records, n_test)})


def with_c9(analysis: Any) -> Any:
    """`analysis` (ics or lipschitz) with C9 plugged in: its extra probe on the arms C9 compares,
    its claims and its tables after the analysis's own (the registry does this: neither analysis
    imports C9)."""
    return dataclasses.replace(analysis, plan_probes=_PlanWithC9(analysis.plan_probes, analysis.section),
                               summarize=_SummaryWithC9(analysis.summarize),
                               claims=tuple(analysis.claims) + (("C9",) if "C9" not in analysis.claims else ()))


# --------------------------------------------------------------------------- judging


def _loss_metrics(a: list[RunRecord], b: list[RunRecord], vs: str, classification: bool, part: str,
                  test: str, n_test: int | None) -> list[MetricInput]:
    from bncli.analyses.train import ERROR_FLOOR, LOSS_FLOOR

    out = [MetricInput(f"(a) final train loss vs {vs}", "lower",
                       [r.final_train_loss for r in a], [r.final_train_loss for r in b],
                       LOSS_FLOOR, "final", test, part)]
    if classification:
        ea, eb = [1 - r.best_test_acc for r in a], [1 - r.best_test_acc for r in b]
        floor = binomial_floor(finite_mean(ea), finite_mean(eb), n_test) if n_test else ERROR_FLOOR
        out.append(MetricInput(f"(a) best held-out error vs {vs}", "lower", ea, eb, floor, "best", test, part))
    else:
        out.append(MetricInput(f"(a) best held-out MSE vs {vs}", "lower",
                               [r.best_test_loss for r in a], [r.best_test_loss for r in b],
                               LOSS_FLOOR, "best", test, part))
    return out


def verdict_of(a: str, b: str, c: str) -> str:
    """SCIENCE.md C9: supported when (a), (b), (c) all hold; refuted when (a) fails while (c) holds,
    or (c) fails; else inconclusive."""
    return verdict_of_parts({"a": a, "b": b, "c": c})


def _has(rs: Sequence[RunRecord], probe: str) -> bool:
    return bool(rs) and all(probe in r.probes for r in rs)


def _common(*groups: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """The runs of each arm on the seeds every arm has, in seed order (paired by seed)."""
    by = [{r.seed: r for r in g} for g in groups]
    seeds = sorted(set.intersection(*(set(d) for d in by)))
    return [[d[s] for s in seeds] for d in by]


def c9_parts(spec: Spec, records: Sequence[RunRecord], arm: str, lr: float,
             n_test: int | None = None) -> dict[str, Any] | None:
    """The inputs of C9 for one arm at one learning rate, paired by seed over the three arms
    (None when data are missing): metric inputs tagged with their part, the parts decided outside
    the metrics (divergence, blown-up landscapes), and notes."""
    from bncli.analyses.ics import C2_METRICS, SHIFT_FLOOR, run_dist_mean
    from bncli.analyses.landscape import C4_METRICS, LANDSCAPE_FLOOR, run_landscape_stats

    plain, bn = plain_arm(spec), batchnorm_arm(spec)
    if plain is None or bn is None:
        return None
    groups = by_arm_lr(records)
    x, p, n = _common(*(groups.get((name, lr), []) for name in (arm, plain.name, bn.name)))
    if not (x and p and n) or not (_has(x, "ics_dist") and _has(n, "ics_dist")
                                   and _has(x, "landscape") and _has(p, "landscape")):
        return None
    notes: list[str] = []
    overrides: dict[str, str] = {}
    classification = any(r.test_acc and r.test_acc[0] is not None for r in records)
    # (a): training; a diverged run's final loss is NaN, so its seed drops out of that pair
    div = {name: sum(r.diverged for r in rs) / len(rs) for name, rs in ((arm, x), (plain.name, p), (bn.name, n))}
    m_bn = mask_diverged(_loss_metrics(x, n, bn.name, classification, "a_bn", NON_INFERIORITY, n_test), x, n)
    m_plain = mask_diverged(_loss_metrics(x, p, plain.name, classification, "a_plain", "superiority", n_test),
                            x, p)
    if div[arm] == 1 and div[bn.name] < 1:
        overrides["a_bn"] = FAILS
    if div[arm] == 1 and div[plain.name] < 1:
        overrides["a_plain"] = FAILS
    if div[plain.name] == 1 and div[arm] == 0:
        overrides["a_plain"] = HOLDS
        notes.append(f"(a) vs {plain.name} decided by divergence: {plain.name} diverged at every seed, {arm} trained")
    if any(div.values()):
        notes.append("diverged seeds count against their arm: " + ", ".join(
            f"{k} {v:.0%}" for k, v in div.items() if v))

    def shifts(r: RunRecord, key: str) -> float:
        return math.nan if r.diverged else run_dist_mean(r, key)

    # (b): the C2 metrics, larger than BN's
    m_b = [MetricInput(f"(b) {label} vs {bn.name}", "higher", [shifts(r, key) for r in x],
                       [shifts(r, key) for r in n], SHIFT_FLOOR, "mean", "superiority", "b")
           for key, label in C2_METRICS]
    # (c): the C4 metrics (medians over measurement steps), lower than plain's
    sx = [run_landscape_stats(r) for r in x]
    sp = [run_landscape_stats(r) for r in p]
    m_c = mask_diverged([MetricInput(f"(c) {label} vs {plain.name}", "lower", [s[f"{key}_median"] for s in sx],
                                     [s[f"{key}_median"] for s in sp], LANDSCAPE_FLOOR, "median",
                                     "superiority", "c") for key, label in C4_METRICS], x, p)
    dx = sum(not math.isfinite(s["loss_variation_median"]) for s in sx)
    dp = sum(not math.isfinite(s["loss_variation_median"]) for s in sp)
    if dx == len(sx) and dp == 0:
        overrides["c"] = FAILS
        notes.append(f"(c) decided by non-finite landscapes: {arm}'s blew up at half its measurements or "
                     "more in every seed: (c) fails")
    elif dp == len(sp) and dx == 0:
        overrides["c"] = HOLDS
        notes.append(f"(c) decided by non-finite landscapes: {plain.name}'s blew up at half its "
                     "measurements or more in every seed: (c) holds")
    decided = ("divergence" if any(k.startswith("a") for k in overrides) else "") + \
              (" & non-finite" if "c" in overrides else "")
    return {"metrics": m_bn + m_plain + m_b + m_c, "overrides": overrides, "notes": notes,
            "plain": plain.name, "bn": bn.name, "seeds": [r.seed for r in x],
            "decided_by": decided.strip(" &") or "metrics"}


def _part_text(parts: dict[str, str], plain: str, bn: str) -> str:
    return (f"(a) {parts['a']} (no worse than {bn} beyond the margin, non-inferiority: {parts['a_vs_bn']}; "
            f"better than {plain}: {parts['a_vs_plain']}); (b) {parts['b']}; (c) {parts['c']}")


def _c9_claim(spec: Spec, records: Sequence[RunRecord], arm: str, lr: float,
              n_test: int | None) -> Claim | None:
    parts = c9_parts(spec, records, arm, lr, n_test)
    if parts is None:
        return None
    c = make_claim("C9", C9_STATEMENT, lr, arm, f"{parts['plain']} & {parts['bn']}", parts["metrics"],
                   spec.verdict, "", None, None, seeds=parts["seeds"], part_overrides=parts["overrides"])
    if parts["decided_by"] != "metrics":
        c = replace(c, decided_by=parts["decided_by"])
    return replace(c, note="; ".join([_part_text(c.parts, parts["plain"], parts["bn"]), *parts["notes"],
                                      scope_note(spec, arm), RULE_NOTE]))


def scope_note(spec: Spec, arm: str) -> str:
    """Which reading of Santurkar's ℓp normalization the arm is (SCIENCE.md, Arms)."""
    a = spec.arm(arm)
    scope = a.norm_info.scope_note
    return scope(a) if scope is not None else f"{arm}: {a.norm_info.short}"


def c9_claims(spec: Spec, records: Sequence[RunRecord], n_test: int | None = None) -> list[Claim]:
    """C9 per ℓp arm and learning rate, against the plain arm and the batchnorm arm. Decided after
    Holm by the parts rule (verdicts.judge): the part statuses are in `claim.parts`."""
    out: list[Claim] = []
    for lr in spec.train.lr:
        for arm in c9_arms(spec):
            c = _c9_claim(spec, records, arm.name, lr, n_test)
            if c is not None:
                out.append(c)
    return out


def c9_reported(spec: Spec, records: Sequence[RunRecord], n_test: int | None = None) -> list[dict[str, Any]]:
    """LayerNorm and GroupNorm arms compared the C9 way: reported, not judged (SCIENCE.md C9);
    their p-values are not adjusted with the command's family."""
    rows = []
    for lr in spec.train.lr:
        for arm in c9_arms(spec, norms_with("reported")):
            c = _c9_claim(spec, records, arm.name, lr, n_test)
            if c is None:
                continue
            rows.append({"lr": lr, "arm": arm.name, "a": c.parts["a"], "b": c.parts["b"], "c": c.parts["c"],
                         "would_be": c.verdict, "leaning": c.leaning,
                         "metrics": [{"name": m.name, "arm_mean": m.arm_mean, "baseline_mean": m.baseline_mean,
                                      "effect": m.rel_diff, "ci": m.ci, "points": m.points} for m in c.metrics]})
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


def c9_tables(spec: Spec, records: Sequence[RunRecord], n_test: int | None = None) -> dict[str, Any]:
    """Tables for a summary, only for specs with an ℓp arm (others get nothing new)."""
    if not c9_arms(spec):
        return {}
    out: dict[str, Any] = {}
    rows = c9_reported(spec, records, n_test)
    if rows:
        out["c9_reported"] = rows
    missing = c9_missing(spec, records)
    if missing:
        out["c9_note"] = missing
    return out


# its claims: what render, report, plot files and batch expectations read (bncli.claims)
CLAIMS = (
    ClaimInfo("C9", C9_STATEMENT, "ics", figure=None, plot_name="shift_vs_smoothness",
              caption=('Each point: one arm at one learning rate; x: 1-Wasserstein shift per step (C2), y: '
                       'effective β-smoothness (C4). Santurkar §3.3: ℓp-normalized nets shift more, yet are '
                       'smoother.')),
)
