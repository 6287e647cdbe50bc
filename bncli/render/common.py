"""Shared rendering: number formatting, the claims table; atomic writes re-exported from bncli.io."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bncli.io import atomic_write_bytes, atomic_write_json, atomic_write_text, current_umask  # noqa: F401
from bncli.render.compact import VERDICT_STYLE, claims_block, claims_table, verdict_text  # noqa: F401  (re-exported)
from bncli.stats import fmt  # noqa: F401  (re-exported for the renderers)


def fmt_pm(pair: Sequence[float], digits: int = 4) -> str:
    m, s = pair
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "-"
    if not s:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ± {fmt(s, 2)}"
