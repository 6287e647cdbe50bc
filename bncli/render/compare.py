"""`bncli compare` in the compact style: one row per claim and regime (changed ones first) with its
verdict in A and in B (an exploratory verdict with its leaning), under a changed claim its metrics'
arm means A → B; last one line: how many verdicts changed, and the exit code."""

from __future__ import annotations

import math

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bncli.claim_text import num
from bncli.compare import ClaimChange, MetricChange, ResultComparison
from bncli.render.compact import table
from bncli.render.palette import FAIL, PASS, verdict_style, verdict_symbol


def _verdict(label: str | None) -> Text:
    if label is None:
        return Text("– not judged", style="dim")
    verdict = label.split("→")[0]
    return Text(f"{verdict_symbol(verdict)} {label}", style=verdict_style(verdict))


def _verdicts(c: ClaimChange) -> Text:
    if not c.changed:
        return _verdict(c.label_a)
    a, b = _verdict(c.label_a), _verdict(c.label_b)
    # two long labels go on two lines, so that the metric names keep the room they need
    return Text.assemble(a, "\n→ " if len(a) + len(b) > 26 else " → ", b)


def _regime(c: ClaimChange) -> str:
    where = c.comparison or c.command
    return f"{where} · lr {num(c.lr)} · {c.arm} vs {c.baseline}"


def _metric_change(m: MetricChange) -> str:
    if m.a is None or m.b is None:
        return f"only in {'B' if m.a is None else 'A'}"
    rel = "" if math.isnan(m.rel_change) else f" ({m.rel_change:+.1%})".replace("-", "−")
    pts = f", {m.a.points}→{m.b.points}" if m.points_changed else ""
    return f"{num(m.a.arm_mean)} → {num(m.b.arm_mean)}{rel}{pts}"


def render_compare(cmp: ResultComparison, detail: bool = False) -> list:
    """The table (the metrics of changed claims; with `detail` of every claim), then one line:
    how many verdicts changed and the exit code."""
    rules = ("" if cmp.same_rule or not cmp.rule_a else
             f"\nverdict rules differ: A by {cmp.rule_a}; B by {cmp.rule_b}")
    t: Table = table(f"A = {escape(cmp.a)}\nB = {escape(cmp.b)}{rules}",
                     caption="≠ changed (an exploratory verdict's leaning included)  = same; "
                     "metric rows: the arm's mean A → B (change), and where it points when that changed")
    t.add_column("", no_wrap=True)
    t.add_column("claim", no_wrap=True)
    t.add_column("regime / metric")
    t.add_column("A → B")
    rows = sorted(cmp.claims, key=lambda c: not c.changed)
    for c in rows:
        mark = Text("≠", style=FAIL[1]) if c.changed else Text("=", style="dim")
        metrics = c.metrics if (c.changed or detail) else []
        t.add_row(mark, Text(c.claim, style="bold" if c.changed else ""), _regime(c), _verdicts(c))
        for m in metrics:
            t.add_row("", "", Text(f"  {m.name}", style="dim"), _metric_change(m))
    n = cmp.n_changed
    code = cmp.exit_code()
    line = (Text(f"{n} of {len(cmp.claims)} verdict(s) changed (exit {code})", style=FAIL[1]) if n
            else Text(f"no verdict changed ({len(cmp.claims)} compared; exit {code})", style=PASS[1]))
    return [t, line]
