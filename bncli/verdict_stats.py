"""The numbers behind a verdict, torch-free (SCIENCE.md, Verdicts): per-seed effects on the log-ratio
(or difference) scale, the spread floor a metric's resolution sets, one-sided paired t-tests against
the margin with their matching t-interval, Holm's step-down, and binomial noise floors.

Everything here is a pure function of per-seed values; the verdict rule itself is in verdicts.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RATIO, DIFFERENCE = "ratio", "difference"
SCALES = (RATIO, DIFFERENCE)


def binomial_floor(rate_a: float, rate_b: float, n: int, z: float = 1.96) -> float:
    """Resolution of an error rate measured on `n` examples: z standard errors of the difference
    of two rates, with the pooled rate kept at >= 1/n (0/n vs 1/n is noise, not a -100 % effect)."""
    if n <= 0:
        return 0.0
    rates = [r for r in (rate_a, rate_b) if r is not None and math.isfinite(r)]
    p = max(sum(rates) / len(rates) if rates else 0.0, 1.0 / n)
    p = min(p, 0.5)
    return z * math.sqrt(2.0 * p * (1.0 - p) / n)


def effects(a: Sequence[float], b: Sequence[float], floor: float, scale: str) -> np.ndarray:
    """Per pair the effect on the test's scale: ln((a + f)/(b + f)) (ratio) or a − b (difference).
    The caller has checked a + f > 0 and b + f > 0 on the ratio scale."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if scale == RATIO:
        return np.log(x + floor) - np.log(y + floor)
    return x - y


def spread_floor(a: Sequence[float], b: Sequence[float], floor: float, scale: str) -> float:
    """The smallest per-seed standard deviation of the effect a metric's resolution f allows.

    f is one resolution step of a value: its rounding is uniform over a step, sd f/√12 per value.
    On the difference scale the pair's sd is f/√6; on the log-ratio scale, to first order,
    sqrt(f²/12 · (1/(a+f)² + 1/(b+f)²)), averaged (as a variance) over the pairs."""
    if floor <= 0 or len(a) == 0:
        return 0.0
    if scale == DIFFERENCE:
        return floor / math.sqrt(6.0)
    x, y = np.asarray(a, dtype=float) + floor, np.asarray(b, dtype=float) + floor
    var = floor * floor / 12.0 * (1.0 / (x * x) + 1.0 / (y * y))
    return float(math.sqrt(float(np.mean(var))))


def _special():
    # Student's t from scipy.special (stdtr: the cdf, stdtrit: its inverse), the functions
    # scipy.stats.t calls: scipy.stats itself takes ~0.7 s to import, scipy.special ~0.25 s
    from scipy import special

    return special


def sd_used(x: np.ndarray, sd_min: float) -> float:
    """The sample sd (ddof 1) of the per-seed effects, floored by the metric's resolution."""
    return max(float(np.std(x, ddof=1)), sd_min)


def t_one_sided(x: Sequence[float], mu: float, alternative: str, sd_min: float = 0.0) -> float | None:
    """One-sided one-sample t-test of mean(x) against mu ("less": mean < mu; "greater": mean > mu),
    with the sd floored at sd_min. None below 2 values. Identical values with no floor: the
    t statistic is ±inf (p 0 or 1; 0.5 when the mean equals mu)."""
    v = np.asarray(x, dtype=float)
    n = len(v)
    if n < 2:
        return None
    s = sd_used(v, sd_min)
    diff = float(v.mean()) - mu
    if s == 0.0:
        if diff == 0.0:
            return 0.5
        below = diff < 0
        return 0.0 if below == (alternative == "less") else 1.0
    t = diff / (s / math.sqrt(n))
    sp = _special()
    p = float(sp.stdtr(n - 1, t)) if alternative == "less" else float(sp.stdtr(n - 1, -t))
    return min(1.0, max(0.0, p))


def t_interval(x: Sequence[float], sd_min: float = 0.0, level: float = 0.95) -> tuple[float, float] | None:
    """The t-interval of mean(x) matching the one-sided tests (same floored sd); None below 2."""
    v = np.asarray(x, dtype=float)
    n = len(v)
    if n < 2:
        return None
    s = sd_used(v, sd_min)
    q = float(_special().stdtrit(n - 1, 0.5 + level / 2.0))
    half = q * s / math.sqrt(n)
    m = float(v.mean())
    return m - half, m + half


def holm(pvals: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None; the family is the non-None ones)."""
    items = sorted((p, i) for i, p in enumerate(pvals) if p is not None and math.isfinite(p))
    m = len(items)
    out: list[float | None] = [None] * len(pvals)
    running = 0.0
    for k, (p, i) in enumerate(items):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


@dataclass(frozen=True)
class Sides:
    """One metric's paired statistics on the seeds where both values are finite."""

    n: int
    per_seed: list[float]  # the effect per seed on the test's scale (log ratio or difference)
    mean: float  # mean of per_seed
    ci: tuple[float, float] | None  # 95 % t-interval of the mean, on the test's scale
    p_less: float | None  # H1: mean < lower bound (the margin below)
    p_greater: float | None  # H1: mean > upper bound
    sd_min: float
    identical: bool  # every seed the same effect (often a seeding fault)


def sides(a: Sequence[float], b: Sequence[float], floor: float, scale: str, lower: float,
          upper: float) -> Sides:
    """The one-sided tests of the mean effect below `lower` and above `upper`, and its interval."""
    n = len(a)
    if n == 0:
        return Sides(0, [], math.nan, None, None, None, 0.0, False)
    e = effects(a, b, floor, scale)
    sd_min = spread_floor(a, b, floor, scale)
    return Sides(
        n=n, per_seed=[float(v) for v in e], mean=float(e.mean()), ci=t_interval(e, sd_min),
        p_less=t_one_sided(e, lower, "less", sd_min), p_greater=t_one_sided(e, upper, "greater", sd_min),
        sd_min=sd_min, identical=n >= 2 and float(np.ptp(e)) == 0.0,
    )


def geometric_mean(values: Sequence[float], floor: float = 0.0) -> float:
    """exp(mean ln(v + f)) − f: the centre the log-ratio effect compares (NaN when empty)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return math.nan
    return float(np.exp(np.mean(np.log(v + floor))) - floor)
