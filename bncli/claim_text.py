"""Plain-text words for numbers, effects and verdicts, shared by render/ and batch/ (expectation
details): no Rich, no torch."""

from __future__ import annotations

import math
from typing import Any


def num(value: float | int | None, sig: int = 4) -> str:
    """A number in `sig` significant digits, as one word: '-' for missing, 'inf', '0.9148',
    '1234', '1.35e-7', '2.41e+5'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    v = float(value)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e4:
        s = f"{v:.{sig}g}"
        return f"{v:.0f}" if "e" in s else s  # 1412 with 3 digits: 1412, not 1.41e+03
    mant, exp = f"{v:.{max(1, min(sig, 3) - 1)}e}".split("e")
    return f"{mant}e{exp[0]}{int(exp[1:])}"


def rel_text(rel: float | None) -> str:
    """(arm − baseline)/|baseline| as '+39.4%', or as a ratio '×1783' once it passes +900 %."""
    if rel is None or not math.isfinite(rel):
        return "n/a"
    if rel >= 9:
        ratio = 1 + rel
        return f"×{ratio:.3g}" if ratio < 100 else (f"×{ratio:.0f}" if ratio < 1e6 else f"×{num(ratio, 3)}")
    return f"{rel:+.1%}".replace("-", "−")


def ci_text(m: Any) -> str:
    """The effect with its 95 % t-interval as one word: '+35.2%[+20.1,+51.0]' (the interval in
    percent; a difference-scale metric in its own units), just the effect without an interval.
    Once the effect or its upper bound passes +900 %, as ratios arm/baseline: '×223[×1.1,×7713]'."""
    ci = getattr(m, "ci", None)
    if getattr(m, "scale", "ratio") == "difference":
        eff = "n/a" if not math.isfinite(m.effect) else f"{'+' if m.effect >= 0 else ''}{num(m.effect, 3)}"
        if not ci or any(v is None or not math.isfinite(v) for v in ci):
            return eff
        return f"{eff}[{num(ci[0], 2)},{num(ci[1], 2)}]".replace("-", "−")
    eff = rel_text(m.rel_diff)
    if not ci or any(v is None or not math.isfinite(v) for v in ci):
        return eff
    if max(m.rel_diff, ci[1]) >= 9:  # past +900 %: ratios arm/baseline, not 20-digit percentages
        return f"×{num(1 + m.rel_diff, 3)}[×{num(1 + ci[0], 2)},×{num(1 + ci[1], 2)}]"
    lo, hi = (f"{100 * v:+.0f}" if abs(v) >= 0.995 else f"{100 * v:+.1f}" for v in ci)
    return f"{eff}[{lo},{hi}]".replace("-", "−")


def beyond_text(c: Any) -> str:
    """'3/3': seeds beyond the margin the claimed way (the claim's weakest metric); a schema 3
    document's bootstrap stability as a percentage; '-' when neither."""
    b = getattr(c, "beyond", None)
    if b:
        return f"{b[0]}/{b[1]}"
    s = getattr(c, "stability", None)
    return "-" if s is None else f"{s:.0%} stab."


def verdict_label(c: Any) -> str:
    """The verdict as printed everywhere: 'supported', 'exploratory (→ refuted)' below the seeds a
    confirmatory verdict needs, plus what decided it when it was not the metrics."""
    v = getattr(c, "verdict", "")
    lean = getattr(c, "leaning", v)
    text = f"exploratory→{lean}" if v == "exploratory" else v
    by = getattr(c, "decided_by", "metrics")
    if by not in ("metrics", "maths-check", "", None):  # C5 is always a check: its note says so
        text += f" [by {by}]"
    return text
