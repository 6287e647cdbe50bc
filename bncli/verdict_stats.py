"""The numbers behind a verdict, torch-free: paired per-seed effects, paired tests (t, Wilcoxon,
sign), the paired bootstrap interval, TOST, Holm's step-down and noise floors (SCIENCE.md, Verdicts).

Everything here is a pure function of per-seed values; the verdict rule itself is in verdicts.py.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TINY = 1e-12


def binomial_floor(rate_a: float, rate_b: float, n: int, z: float = 1.96) -> float:
    """Noise floor of a difference of two error rates measured on `n` examples each: z standard
    errors of the difference, with the pooled rate kept at >= 1/n (0/n vs 1/n is noise, not a
    -100 % effect)."""
    if n <= 0:
        return 0.0
    rates = [r for r in (rate_a, rate_b) if r is not None and math.isfinite(r)]
    p = max(sum(rates) / len(rates) if rates else 0.0, 1.0 / n)
    p = min(p, 0.5)
    return z * math.sqrt(2.0 * p * (1.0 - p) / n)


def relative_diffs(a: Sequence[float], b: Sequence[float], floor: float = 0.0) -> np.ndarray:
    """Per pair (a_i - b_i) / |b_i|; the denominator is kept at >= the floor (and > 0), so a
    near-zero baseline does not blow a noise-sized difference up to ±100 %."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    denom = np.abs(y)
    if floor > 0:
        denom = np.maximum(denom, floor)
    small = denom <= TINY
    denom = np.where(small, np.maximum(np.abs(x), TINY), denom)
    return (x - y) / denom


def ttest_p(d: Sequence[float], mu: float = 0.0, alternative: str = "two-sided") -> float | None:
    """Paired t-test of mean(d) against mu (one sample on the differences). None with < 2 values;
    when every difference is the same (no spread: the t statistic is undefined) the sign test's p,
    never 0 (n equal differences are not infinitely strong evidence)."""
    x = np.asarray(d, dtype=float)
    n = len(x)
    if n < 2:
        return None
    if np.ptp(x) == 0:
        return sign_p(x - mu, alternative)
    from scipy import stats  # imported here: scipy.stats costs ~1 s at start-up

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_1samp(x, mu, alternative=alternative).pvalue)
    return p if math.isfinite(p) else None


def sign_p(d: Sequence[float], alternative: str = "two-sided") -> float | None:
    """Exact sign test on the paired differences (zeros dropped); None when nothing is left."""
    x = np.asarray(d, dtype=float)
    pos, neg = int((x > 0).sum()), int((x < 0).sum())
    if pos + neg == 0:
        return 1.0 if len(x) else None
    from scipy import stats

    return float(stats.binomtest(pos, pos + neg, 0.5, alternative=alternative).pvalue)


def wilcoxon_p(d: Sequence[float]) -> float | None:
    """Exact two-sided Wilcoxon signed-rank p of the paired differences (None below 2 non-zero)."""
    x = np.asarray(d, dtype=float)
    x = x[x != 0]
    if len(x) < 2:
        return None
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(stats.wilcoxon(x, method="exact" if len(x) <= 25 else "auto").pvalue)
        except ValueError:
            return None


def tost_p(r: Sequence[float], margin: float) -> float | None:
    """Two one-sided paired t-tests of mean(r) inside (-margin, +margin): the larger p."""
    lo = ttest_p(r, -margin, "greater")
    hi = ttest_p(r, margin, "less")
    if lo is None or hi is None:
        return None
    return max(lo, hi)


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampling indices over seeds (pairs stay pairs), from a fixed generator."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_ci(r: Sequence[float], idx: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of the mean of `r` over the paired bootstrap resamples `idx`."""
    x = np.asarray(r, dtype=float)
    if len(x) < 2:
        return None
    means = x[idx].mean(axis=1)
    q = (1.0 - level) / 2.0
    return float(np.quantile(means, q)), float(np.quantile(means, 1.0 - q))


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
class Paired:
    """One metric's paired statistics over the seeds both arms have."""

    n: int
    rel: list[float]  # per seed (a - b) / |b|
    effect: float  # mean of rel
    mean_diff: float  # mean of a - b
    ci: tuple[float, float] | None
    p_t: float | None  # paired t (sign test when the differences have no spread)
    p_wilcoxon: float | None  # exact signed-rank, beside the t-test when n is small
    p_tost: float | None  # equivalence within the margin


def paired(a: Sequence[float], b: Sequence[float], floor: float, margin: float,
           idx: np.ndarray | None) -> Paired:
    """The paired statistics of one metric (a and b aligned by seed, all finite)."""
    n = len(a)
    if n == 0:
        return Paired(0, [], math.nan, math.nan, None, None, None, None)
    r = relative_diffs(a, b, floor)
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    ci = bootstrap_ci(r, idx) if idx is not None and n >= 2 else None
    return Paired(
        n=n, rel=[float(v) for v in r], effect=float(r.mean()), mean_diff=float(d.mean()), ci=ci,
        p_t=ttest_p(r), p_wilcoxon=wilcoxon_p(d) if n < 10 else None,
        p_tost=tost_p(r, margin),
    )
