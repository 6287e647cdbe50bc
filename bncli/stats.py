"""Torch-free aggregation helpers shared by measuring and judging: finite means and maxima."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def _finite(vals: Iterable[float | None]) -> list[float]:
    return [float(v) for v in vals if v is not None and math.isfinite(float(v))]


def finite_mean(vals: Iterable[float | None]) -> float:
    """Mean of the finite values (None, NaN and ±inf left out); NaN when there are none."""
    f = _finite(vals)
    return statistics.fmean(f) if f else math.nan


def finite_max(vals: Iterable[float | None]) -> float:
    """Max of the finite values (None, NaN and ±inf left out); NaN when there are none."""
    f = _finite(vals)
    return max(f) if f else math.nan


def worst_max(vals: Iterable[float | None]) -> float:
    """Max where a non-finite value (NaN or ±inf) counts as +inf: for errors and blow-ups that must
    not be dropped. None is left out; NaN when nothing is left."""
    v = [float(x) for x in vals if x is not None]
    if not v:
        return math.nan
    return math.inf if any(not math.isfinite(x) for x in v) else max(v)


def fmt(value: float | None, digits: int = 4) -> str:
    """Compact number for text (claim notes and tables): '-' for missing, scientific for very
    small/large magnitudes."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    v = float(value)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{max(1, digits - 2)}e}"
    return f"{v:.{digits}g}"


def spread_indices(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n), first and last included (all of them when k >= n)."""
    if k >= n:
        return list(range(n))
    if k <= 1:
        return [0][:k]
    return sorted({round(j * (n - 1) / (k - 1)) for j in range(k)})
