"""Expectations against results: claims' verdicts, metric thresholds and arm comparisons,
divergence. Declarative only (nothing is eval'ed)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bncli.batch.expand import SUMMARY_METRICS
from bncli.batch.model import Expectation
from bncli.results import CommandResult
from bncli.stats import finite_mean, fmt


@dataclass
class Outcome:
    """One expectation's result: met or not, the numbers behind it, and by how much it missed."""

    cell: str
    command: str
    expectation: Expectation
    passed: bool
    detail: str
    values: dict[str, Any] = field(default_factory=dict)
    # not met, but the expectation is a known deviation (a prediction kept; the reason says why)
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        from bncli.results import clean

        return clean({
            "comparison": self.cell,
            "command": self.command,
            "expect": self.expectation.model_dump(exclude_none=True, exclude_defaults=True),
            "description": self.expectation.describe(),
            "passed": self.passed,
            "skipped": self.skipped,
            "detail": self.detail,
            "values": self.values,
        })


def _rows(tables: dict[str, Any]) -> list[dict[str, Any]]:
    """Every per (lr, arm) table row, whatever table (or nested table) it sits in."""
    out: list[dict[str, Any]] = []

    def take(v: Any) -> None:
        if isinstance(v, list):
            out.extend(r for r in v if isinstance(r, dict) and "arm" in r and "lr" in r)
        elif isinstance(v, dict):
            for x in v.values():
                if isinstance(x, list):
                    take(x)

    for v in tables.values():
        take(v)
    return out


def _num(v: Any) -> float:
    if isinstance(v, (list, tuple)) and v:  # [mean, std]
        v = v[0]
    if isinstance(v, bool) or v is None:
        return math.nan if v is None else float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def metric_value(result: CommandResult, name: str, arm: str, lr: float) -> float:
    """A summary metric (mean over seeds), or a table metric: the mean over the rows of (lr, arm)
    (layers, α, ...), at the nonlinearity's input for ICS rows, at the end phase for saturation."""
    if name in SUMMARY_METRICS:
        for s in result.summary:
            if s.arm == arm and s.lr == lr:
                return _num(getattr(s, name))
        return math.nan
    vals: list[float] = []
    for row in _rows(result.tables):
        if row["arm"] != arm or row["lr"] != lr or row.get("site", "preact") != "preact":
            continue
        if row.get("metric") == name and "values" in row:
            finite = [x for x in row["values"] if x is not None and math.isfinite(x)]
            vals.append(finite[-1] if finite else math.nan)
        elif f"{name}_mean" in row:
            vals.append(_num(row[f"{name}_mean"]))
        elif name in row:
            vals.append(_num(row[name]))
    return finite_mean(vals)


def _relative(v: float, w: float) -> str:
    """' (+12.3%)', or a ratio ' (×1782)' / ' (×1/1782)' when the difference is past 10x."""
    if not (math.isfinite(v) and math.isfinite(w)) or w == 0:
        return ""
    rel = (v - w) / abs(w)
    if abs(rel) <= 9 and (v / w if w else 0) > 0.1:
        return f" ({rel:+.1%})"
    ratio = v / w
    if ratio == 0:
        return ""
    return f" (×{ratio:.3g})" if abs(ratio) >= 1 else f" (×1/{1 / ratio:.3g})"


def _lrs(e: Expectation, result: CommandResult) -> list[float]:
    return [e.lr] if e.lr is not None else sorted({s.lr for s in result.summary})


def evaluate(cell: str, command: str, e: Expectation, result: CommandResult) -> Outcome:
    if e.claim is not None:
        o = _claim(cell, command, e, result)
    elif e.metric is not None:
        o = _metric(cell, command, e, result)
    else:
        o = _divergence(cell, command, e, result)
    if e.known_deviation is None:
        return o
    if o.passed:
        o.detail = f"{o.detail} (met, although marked as a known deviation: {e.known_deviation})"
        return o
    o.skipped = True
    o.detail = f"known deviation: {e.known_deviation}; measured: {o.detail}"
    return o


def claim_text(c: Any) -> str:
    """A verdict with what it rests on: 'lr 0.5 batchnorm: refuted (3 seeds, p_adj 0.004 of 4
    claims, 3/3 beyond; W1 +35%[+20,+51], ...)'."""
    from bncli.claim_text import beyond_text, ci_text, verdict_label

    p = f", p_adj {fmt(c.p_adj, 2)} of {c.family} claim(s)" if getattr(c, "p_adj", None) is not None else ""
    stab = f", {beyond_text(c)} beyond" if beyond_text(c) != "-" else ""
    mets = ", ".join(f"{m.name.split(' (')[0]} {ci_text(m)}" for m in c.metrics[:4])
    return f"lr {c.lr:g} {c.arm}: {verdict_label(c)} ({c.n_seeds} seed(s){p}{stab}; {mets})"


def _claim(cell: str, command: str, e: Expectation, result: CommandResult) -> Outcome:
    want = [e.verdict] if e.verdict else list(e.verdict_in or [])
    claims = [c for c in result.claims if c.claim == e.claim and (e.lr is None or c.lr == e.lr)
              and (e.arm is None or c.arm == e.arm)]
    if not claims:
        return Outcome(cell, command, e, False, f"no {e.claim} verdict was made (see the comparison's notes)")
    got = {f"lr {c.lr:g} {c.arm}": c.verdict for c in claims}
    bad = [c for c in claims if c.verdict not in want]
    if not bad:
        return Outcome(cell, command, e, True, "; ".join(claim_text(c) for c in claims), got)
    miss = "; ".join(claim_text(c) for c in bad)
    return Outcome(cell, command, e, False, f"wanted {' or '.join(want)}; got {miss}", got)


def _metric(cell: str, command: str, e: Expectation, result: CommandResult) -> Outcome:
    parts, values, ok = [], {}, True
    assert e.metric is not None and e.arm is not None
    for lr in _lrs(e, result):
        v = metric_value(result, e.metric, e.arm, lr)
        values[f"{e.arm} lr {lr:g}"] = v
        if e.at_least is not None or e.at_most is not None:
            bound = e.at_least if e.at_least is not None else e.at_most
            good = math.isfinite(v) and (v >= bound if e.at_least is not None else v <= bound)
            miss = "" if good else f", missed by {fmt(abs(v - bound)) if math.isfinite(v) else 'n/a'}"
            parts.append(f"lr {lr:g}: {fmt(v)}{miss}")
        else:
            other = e.less_than_arm or e.greater_than_arm
            assert other is not None
            w = metric_value(result, e.metric, other, lr)
            values[f"{other} lr {lr:g}"] = w
            if e.less_than_arm:
                limit = w * (1 - e.by) if w >= 0 else w * (1 + e.by)
                good = math.isfinite(v) and math.isfinite(w) and v < limit
            else:
                limit = w * (1 + e.by) if w >= 0 else w * (1 - e.by)
                good = math.isfinite(v) and math.isfinite(w) and v > limit
            parts.append(f"lr {lr:g}: {fmt(v)} vs {fmt(w)}{_relative(v, w)}")
        ok = ok and good
    return Outcome(cell, command, e, ok, "; ".join(parts), values)


def _divergence(cell: str, command: str, e: Expectation, result: CommandResult) -> Outcome:
    arm = e.diverged or e.not_diverged
    parts, ok = [], True
    for lr in _lrs(e, result):
        rs = [r for r in result.runs if r.arm == arm and r.lr == lr]
        n = sum(r.diverged for r in rs)
        at = ", ".join(str(r.diverged_at) for r in rs if r.diverged)
        parts.append(f"lr {lr:g}: {n}/{len(rs)} seeds diverged" + (f" (step {at})" if at else ""))
        ok = ok and bool(rs) and (n == len(rs) if e.diverged else n == 0)
    return Outcome(cell, command, e, ok, "; ".join(parts))
