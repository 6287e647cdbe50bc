"""`bncli compare` as a Rich table: one row per claim and regime, changed verdicts first."""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text

from bncli.compare import ClaimChange, ResultComparison
from bncli.render.common import VERDICT_STYLE
from bncli.stats import fmt


def _verdict(v: str | None) -> Text:
    return Text(v or "not judged", style=VERDICT_STYLE.get(v or "", "dim"))


def _metric_line(c: ClaimChange) -> str:
    lines = []
    for m in c.metrics:
        if m.a is None or m.b is None:
            lines.append(f"{m.name}: only in {'B' if m.a is None else 'A'}")
            continue
        rel = "" if math.isnan(m.rel_change) else f" ({m.rel_change:+.1%})".replace("-", "−")
        pts = m.a.points if not m.points_changed else f"{m.a.points}→{m.b.points}"
        lines.append(f"{m.name}: {fmt(m.a.arm_mean)} → {fmt(m.b.arm_mean)}{rel}, {pts}")
    return "\n".join(lines)


def render_compare(cmp: ResultComparison) -> list:
    """The table, then one line: how many verdicts changed."""
    rules = ("" if cmp.same_rule or not cmp.rule_a else
             f"\nverdict rules differ: A by {cmp.rule_a}; B by {cmp.rule_b}")
    t = Table(title=f"A = {cmp.a}\nB = {cmp.b}{rules}", title_justify="left", show_lines=True)
    for col in ("claim", "comparison", "lr", "arm vs baseline", "A", "B", "metric: arm mean A → B (change), points"):
        t.add_column(col, overflow="fold")
    rows = sorted(cmp.claims, key=lambda c: not c.changed)
    for c in rows:
        where = f"{c.comparison} · {c.command}" if c.comparison else c.command
        t.add_row(Text(c.claim, style="bold" if c.changed else ""), where, fmt(c.lr),
                  f"{c.arm} vs {c.baseline}", _verdict(c.verdict_a), _verdict(c.verdict_b), _metric_line(c))
    n = cmp.n_changed
    line = (Text(f"{n} of {len(cmp.claims)} verdict(s) changed", style="bold red") if n
            else Text(f"no verdict changed ({len(cmp.claims)} compared)", style="green"))
    return [t, line]
