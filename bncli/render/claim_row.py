"""One claim as one row: its verdict, the metric that decided it (that metric's effect, interval and
seeds beyond the margin) and the claim's adjusted p. The terminal's claims table, the notebook's
claims_frame() and the report take a claim's numbers from here, so each number shown beside a
verdict is one the verdict was made from. Plain values and words: no Rich."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bncli.claim_text import ci_text, verdict_label
from bncli.claim_types import Claim, MetricComparison

#: how a run's value of a metric was made from its measurements (MetricInput.aggregate), in words
AGGREGATE_WORDS = {
    "final": "end of training",
    "mean": "mean over measurements",
    "median": "median over measurements",
    "worst": "worst over measurements",
    "best": "best over training",
    "first reached": "first step reached",
}


def aggregate_words(aggregate: str | None) -> str:
    """'mean' -> 'mean over measurements'; an unknown word as it is; '' for none."""
    return AGGREGATE_WORDS.get(aggregate or "", aggregate or "")


def deciding_metric(c: Claim) -> MetricComparison | None:
    """The number a verdict rests on. With the engine's one-sided tests (schema 4): the metric
    whose p decided the claim's side (intersection-union: the largest p_claimed for supported and
    inconclusive, the largest p_against for refuted). Older documents: for supported / refuted,
    the metric closest to the margin among those pointing that way; for inconclusive, the metric
    that broke the majority direction (one pointing the other way, else one within the margin)."""
    ms = c.metrics
    if not ms:
        return None
    if all(m.p_claimed is not None and m.p_against is not None for m in ms):
        if c.verdict == "refuted" or (c.verdict == "exploratory" and c.leaning == "refuted"):
            return max(ms, key=lambda m: m.p_against)  # type: ignore[arg-type,return-value]
        return max(ms, key=lambda m: m.p_claimed)  # type: ignore[arg-type,return-value]
    way = {"supported": "claimed", "refuted": "against"}.get(c.verdict)
    if way is not None:
        pool = [m for m in ms if m.points == way] or list(ms)
    else:
        claimed = sum(m.points == "claimed" for m in ms)
        against = sum(m.points == "against" for m in ms)
        other = "against" if claimed >= against else "claimed"
        pool = [m for m in ms if m.points == other] or [m for m in ms if m.points == "neither"] or list(ms)

    def closeness(m: MetricComparison) -> float:
        return abs(m.rel_diff) if m.rel_diff is not None and math.isfinite(m.rel_diff) else math.inf

    return min(pool, key=closeness) if way is not None else pool[0]


def effect_text(m: MetricComparison) -> str:
    """The paired effect with its 95 % interval as one word: '+35.2%[+20.1,+51.0]'; once the effect
    or its interval passes +900 %, as ratios arm/baseline ('×223[×1.1,×7713]', '×0.62[×0,×2408]');
    a difference-scale metric in its units; 'n/a: baseline 3/3 not finite' when no seed pair had
    finite values (diverged or blown up: they count against their arm)."""
    if (m.effect is None or not math.isfinite(m.effect)) and m.n_dropped:
        n = m.n_seeds or len(m.arm_values)
        who = [f"{side} {k}/{n}" for side, k in (("arm", m.nonfinite_arm), ("baseline", m.nonfinite_baseline)) if k]
        return f"n/a: {', '.join(who)} not finite"
    ci = m.ci
    if (m.scale != "difference" and m.effect is not None and math.isfinite(m.effect)
            and ci and all(v is not None and math.isfinite(v) for v in ci) and max(m.effect, ci[1]) >= 9):
        from bncli.claim_text import num

        return f"×{num(1 + m.effect, 3)}[×{num(1 + ci[0], 2)},×{num(1 + ci[1], 2)}]"
    return ci_text(m)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


@dataclass(frozen=True)
class ClaimRow:
    """A claim at one learning rate for one arm against its baseline, in one row.

    `effect`, `ci_low`, `ci_high`: the deciding metric's paired effect and its 95 % t-interval
    (ratio scale: the ratio of geometric means − 1, so +0.25 is +25 %; difference scale: the
    difference in the metric's units, `scale` says which); `beyond`: (k, n), that metric's paired
    seeds beyond the margin the claimed way; `p_adj`: the claim's Holm-adjusted p (None below the
    seeds a test needs). `label`: the verdict as printed ('exploratory→supported')."""

    claim: str
    lr: float
    arm: str
    baseline: str
    verdict: str
    leaning: str
    label: str
    metric: str | None
    better: str | None
    scale: str
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    beyond: tuple[int, int] | None
    p_adj: float | None
    effect_text: str
    stability: float | None = None  # schema 3 documents only: bootstrap stability

    @property
    def beyond_text(self) -> str:
        """'2/3', a schema 3 document's '97% stab.', or '-'."""
        if self.beyond is not None:
            return f"{self.beyond[0]}/{self.beyond[1]}"
        return "-" if self.stability is None else f"{self.stability:.0%} stab."


def claim_row(c: Claim) -> ClaimRow:
    """The row of one claim: its deciding metric's effect, interval and seeds beyond the margin."""
    m = deciding_metric(c)
    ci = list(m.ci) if m is not None and m.ci else [None, None]
    kn = m.beyond if m is not None and m.beyond else c.beyond
    return ClaimRow(
        claim=c.claim, lr=c.lr, arm=c.arm, baseline=c.baseline, verdict=c.verdict,
        leaning=c.leaning, label=verdict_label(c),
        metric=m.name if m is not None else None, better=m.better if m is not None else None,
        scale=m.scale if m is not None else "ratio",
        effect=_finite(m.effect) if m is not None else None,
        ci_low=_finite(ci[0]), ci_high=_finite(ci[1]),
        beyond=(int(kn[0]), int(kn[1])) if kn else None, p_adj=_finite(c.p_adj),
        effect_text=effect_text(m) if m is not None else "-",
        stability=getattr(c, "stability", None),
    )
