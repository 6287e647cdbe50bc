"""A batch at a glance, drawn from its JSON document (`BatchRun.to_json()` or a saved batch.json):
a verdict grid (comparison x claim, one column per learning rate), the unmet expectations with the
numbers that decided them, and one last line that counts the expectations and says why the exit
code is what it is. `--detail` adds one claims table per comparison and every expectation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bncli.claim_text import beyond_text, ci_text, num, rel_text, verdict_label
from bncli.render.compact import table
from bncli.render.palette import FAIL, KNOWN, PASS, expectation_state, verdict_style, verdict_symbol
from bncli.results import Claim

#: the override that decided a verdict, when it was not the metrics (C5's maths check always is)
_OVERRIDE = ("metrics", "maths-check", "", None)


def deciding_metric(c: Claim) -> Any:
    """The metric a verdict rests on (the report's rule, so the batch, the terminal and the report
    name the same one)."""
    from bncli.render.report import deciding_metric as rule

    return rule(c)


def _claims(comp: dict[str, Any]) -> list[Claim]:
    return [Claim.from_json(c) for c in comp.get("claims", [])]


def _several(doc: dict[str, Any]) -> set[str]:
    """The comparisons that run several commands (their rows name the command)."""
    names = [c.get("name") for c in doc.get("comparisons", [])]
    return {str(n) for n in names if names.count(n) > 1}


def _name(comp: dict[str, Any], several: set[str]) -> str:
    """The comparison's name, with its command when the comparison has several."""
    return f"{comp['name']} · {comp['command']}" if comp["name"] in several else str(comp["name"])


def _arm(c: Claim) -> str:
    return c.arm if c.baseline == "plain" else f"{c.arm} vs {c.baseline}"


def grid_label(c: Claim) -> str:
    """A verdict in a grid cell: its symbol and word; an exploratory one's leaning ('~ expl→refuted');
    '*' when an override (divergence, a check) decided it instead of the metrics."""
    if c.verdict == "exploratory":
        text = f"{verdict_symbol('exploratory')} expl→{c.leaning}"
    else:
        text = f"{verdict_symbol(c.verdict)} {c.verdict}"
    return text + ("*" if c.decided_by not in _OVERRIDE else "")


def grid_cell(c: Claim) -> Text:
    return Text(grid_label(c), style=verdict_style(c.verdict))


def _status(comp: dict[str, Any]) -> Text | None:
    """What kept a comparison from its verdicts: failed jobs, jobs not run, or nothing to pair."""
    failed = comp.get("failed_jobs") or []
    if failed:
        return Text(f"{FAIL[2]} {len(failed)} of {comp.get('n_jobs', '?')} job(s) failed", style=FAIL[1])
    if comp.get("missing_jobs"):
        return Text(f"– {comp['missing_jobs']} job(s) not run (interrupted)", style="dim")
    if not comp.get("claims"):
        return Text("– no verdict (no normalized arm and plain arm to pair)", style="dim")
    return None


def verdict_grid(doc: dict[str, Any]) -> tuple[Table, Text] | None:
    """One row per comparison (its name and its learning rates), then one row per claim and arm
    with the verdict at each learning rate; and the legend line. Its length grows with the claims
    judged, never with the metrics behind them."""
    comps = doc.get("comparisons", [])
    if not comps:
        return None
    several = _several(doc)
    lr_sets = [sorted({float(c["lr"]) for c in comp.get("claims", [])}) for comp in comps]
    n_lr = max((len(s) for s in lr_sets), default=0) or 1
    exploratory = any(c.get("verdict") == "exploratory" for comp in comps for c in comp.get("claims", []))
    override = any(c.get("decided_by") not in _OVERRIDE for comp in comps for c in comp.get("claims", []))
    legend = "  ".join(f"{verdict_symbol(v)} {v}" for v in ("supported", "refuted", "inconclusive"))
    if exploratory:
        legend += "  ~ expl→x: exploratory (< 3 seeds), leaning x"
    if override:
        legend += "  *: decided by divergence or a check"
    t = table("Verdicts per claim and learning rate")
    t.add_column("comparison / claim and arm (vs plain)", overflow="fold")
    for i in range(n_lr):
        t.add_column("verdict" if i == 0 else "")
    for comp, lrs in zip(comps, lr_sets):
        status = _status(comp)
        lr_cells = [Text(f"lr {num(lr)}", style="bold") for lr in lrs] + [Text("")] * (n_lr - len(lrs))
        name = Text(_name(comp, several), style="bold")
        if status is not None:
            name.append("  ").append_text(status)
        t.add_row(name, *lr_cells)
        rows: dict[tuple[str, str, str], dict[float, Claim]] = {}
        for c in sorted(_claims(comp), key=lambda c: c.claim):
            rows.setdefault((c.claim, c.arm, c.baseline), {})[float(c.lr)] = c
        for (claim, _, _), by_lr in rows.items():
            first = next(iter(by_lr.values()))
            cells = [grid_cell(by_lr[lr]) if lr in by_lr else Text("") for lr in lrs]
            t.add_row(f"  {claim} {_arm(first)}", *cells, *[Text("")] * (n_lr - len(lrs)))
    return t, Text(legend, style="dim")


# ---------------------------------------------------------------- expectations


def _wanted(e: dict[str, Any]) -> list[str]:
    return [e["verdict"]] if e.get("verdict") else list(e.get("verdict_in") or [])


def _short(name: str) -> str:
    return name.split(" (")[0]


def effect_text(m: Any) -> str:
    """The effect with its 95 % interval as one word (claim_text.ci_text), an interval bound past
    +900 % as a ratio ('−100.0%[−100,×8.6e21]'), so that no bound is a 20-digit percentage."""
    ci = m.ci
    if (m.scale == "difference" or not ci or any(v is None or not math.isfinite(v) for v in ci)
            or max(ci) < 9 or m.effect is None or not math.isfinite(m.effect) or m.effect >= 9):
        return ci_text(m)

    def bound(v: float) -> str:
        return f"×{num(1 + v, 2)}" if v >= 9 else f"{100 * v:+.0f}".replace("-", "−")

    return f"{rel_text(m.effect)}[{bound(ci[0])},{bound(ci[1])}]"


def decided_text(c: Claim) -> str:
    """What a verdict rests on, in one line: 'lr 0.1 l1norm: inconclusive, p_adj 0.39,
    loss variation −99%[−100,−97], 2/3 beyond'."""
    parts = [f"lr {num(c.lr)} {_arm(c)}: {verdict_label(c)}"]
    if c.p_adj is not None:
        parts.append(f"p_adj {num(c.p_adj, 2)} ({c.family} claims)")
    m = deciding_metric(c)
    if m is not None:
        parts.append(f"{_short(m.name)} {effect_text(m)}")
    if beyond_text(c) != "-":
        parts.append(f"{beyond_text(c)} beyond")
    return ", ".join(parts)


def _claims_of(doc: dict[str, Any], o: dict[str, Any]) -> list[Claim]:
    """The claims an unmet claim expectation was checked against, those that missed first."""
    e = o.get("expect", {})
    comp = next((c for c in doc.get("comparisons", []) if c.get("name") == o.get("comparison")
                 and c.get("command") == o.get("command")), None)
    if comp is None:
        return []
    found = [c for c in _claims(comp) if c.claim == e.get("claim")
             and (e.get("lr") is None or float(c.lr) == float(e["lr"]))
             and (e.get("arm") is None or c.arm == e["arm"])]
    want = _wanted(e)
    return [c for c in found if c.verdict not in want] or found


def numbers(doc: dict[str, Any], o: dict[str, Any]) -> str:
    """An expectation's numbers: for a claim, what decided each verdict it was checked against
    (those that missed first); else its detail."""
    e = o.get("expect", {})
    detail = str(o.get("detail", ""))
    claims = _claims_of(doc, o) if e.get("claim") and not detail.startswith(("not evaluated", "no ")) else []
    if not claims:
        return detail
    want = f"wanted {' or '.join(_wanted(e))}; " if _state(o) == "unmet" else ""
    return want + "; ".join(decided_text(c) for c in claims)


def _state(o: dict[str, Any]) -> str:
    return expectation_state(o)


def _mark(state: str) -> Text:
    colour, sym = {"met": (PASS[1], PASS[2]), "known": (KNOWN[1], KNOWN[2]), "unmet": (FAIL[1], FAIL[2])}[state]
    return Text(sym, style=colour)


def expectations_table(doc: dict[str, Any], outcomes: Sequence[dict[str, Any]], title: str,
                       legend: bool = True) -> Table:
    several = _several(doc)
    t = table(title, caption=f"{PASS[2]} met  {KNOWN[2]} known deviation (SCIENCE.md; JUnit <skipped>)  "
              f"{FAIL[2]} unmet" if legend else None)
    t.add_column("", no_wrap=True)
    t.add_column("comparison", max_width=24)
    t.add_column("expectation", max_width=28)
    t.add_column("numbers")
    for o in outcomes:
        state = _state(o)
        text = numbers(doc, o)
        if state == "known":
            text = f"{text} (known deviation: {o.get('expect', {}).get('known_deviation', '')})"
        t.add_row(_mark(state), Text(_name({"name": o.get("comparison"), "command": o.get("command")}, several)),
                  Text(str(o.get("description", ""))), Text(text))
    return t


def _known_line(outcomes: Sequence[dict[str, Any]]) -> Text | None:
    known = [o for o in outcomes if o.get("skipped")]
    if not known:
        return None
    line = Text(f"{KNOWN[2]} {len(known)} known deviation(s) (their reasons: --detail, the report, JUnit): ",
                style=KNOWN[1])
    line.append("; ".join(f"{o.get('comparison')} {o.get('description')}" for o in known), style="")
    return line


# ---------------------------------------------------------------- the last lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def count_line(doc: dict[str, Any]) -> Text:
    """'31 expectations: 18 met, 11 known deviations, 2 unmet (exit 1)', with failed jobs and an
    interruption named when they are the reason for the exit code."""
    outcomes = doc.get("expectations", [])
    states = [_state(o) for o in outcomes]
    code = doc.get("exit_code", 0)
    if outcomes:
        counts = [f"{states.count('met')} met"]
        if states.count("known"):
            counts.append(_plural(states.count("known"), "known deviation"))
        counts.append(f"{states.count('unmet')} unmet")
        text = f"{_plural(len(outcomes), 'expectation')}: {', '.join(counts)}"
    else:
        text = "no expectations checked"
    why = []
    if doc.get("interrupted"):
        why.append("interrupted: the finished jobs are kept, --resume runs the rest")
    failed = doc.get("counts", {}).get("failed", 0)
    if failed:
        why.append(f"{_plural(failed, 'job')} failed to run")
    text += "".join(f"; {w}" for w in why) + f" (exit {code})"
    return Text(text, style=PASS[1] if code == 0 else FAIL[1])


def jobs_line(doc: dict[str, Any]) -> Text:
    c = doc.get("counts", {})
    reused = f" ({c['reused']} reused)" if c.get("reused") else ""
    wall = doc.get("wall_s")
    secs = f", {wall:.1f} s" if isinstance(wall, (int, float)) else ""
    return Text(f"{_plural(c.get('jobs', 0), 'job')}{reused}, {c.get('failed', 0)} failed{secs}", style="dim")


# ---------------------------------------------------------------- --detail


DETAIL_CAPTION = ("Δ: the deciding metric's paired effect [95% t-CI, %]; beyond: seeds beyond the margin the "
                  "claimed way; p_adj: Holm across the command's claims; arm vs plain unless named")


def comparison_table(comp: dict[str, Any], title: str, caption: str | None = None) -> Table:
    """One row per claim x lr x arm: the verdict, what decided it (the deciding metric's effect with
    its interval), seeds beyond the margin and the Holm-adjusted p."""
    claims = _claims(comp)
    t = table(escape(title), caption=caption)
    t.add_column("claim")
    t.add_column("lr", justify="right", no_wrap=True)
    t.add_column("arm", max_width=18)
    t.add_column("verdict")
    t.add_column("metric")
    t.add_column("Δ [CI]", justify="right", no_wrap=True)
    t.add_column("beyond", justify="right", no_wrap=True)
    t.add_column("p_adj", justify="right", no_wrap=True)
    for c in claims:
        m = deciding_metric(c)
        t.add_row(c.claim, num(c.lr), _arm(c),
                  Text(verdict_label(c), style=verdict_style(c.verdict)),
                  _short(m.name) if m else "-", effect_text(m) if m else "", beyond_text(c),
                  num(c.p_adj, 2) if c.p_adj is not None else "")
    return t


def detail_tables(doc: dict[str, Any]) -> list[Any]:
    comps = doc.get("comparisons", [])
    several = _several(doc)
    out: list[Any] = []
    last = max((i for i, c in enumerate(comps) if c.get("claims")), default=-1)
    for i, comp in enumerate(comps):
        title = f"{comp['name']} · {comp['command']}"
        for lbl_err in (comp.get("failed_jobs") or [])[:3]:
            out.append(Text(f"{title}: {lbl_err.get('run')}: {lbl_err.get('error')}", style=FAIL[1]))
        if comp.get("claims"):
            out.append(comparison_table(comp, title, DETAIL_CAPTION if i == last else None))
        elif not comp.get("failed_jobs"):
            status = _status(comp)
            out.append(Text(f"{_name(comp, several)}: {status.plain if status else ''}", style="dim"))
    outcomes = doc.get("expectations", [])
    if outcomes:
        out.append(expectations_table(doc, outcomes, f"Expectations ({len(outcomes)})"))
    return out


# ---------------------------------------------------------------- the whole output


def render_batch(doc: dict[str, Any], detail: bool = False) -> list[Any]:
    """What `bncli batch` prints: (--detail: the per-comparison tables and every expectation,)
    the verdict grid, the unmet expectations with their numbers, the known deviations in one
    line, the jobs line, and last the count of expectations with the exit code's reason."""
    out: list[Any] = detail_tables(doc) if detail else []
    grid = verdict_grid(doc)
    if grid is not None:
        out.extend(grid)
    outcomes = doc.get("expectations", [])
    unmet = [o for o in outcomes if _state(o) == "unmet"]
    if unmet and not detail:
        out.append(expectations_table(doc, unmet, f"Unmet expectations ({len(unmet)})", legend=False))
    known = _known_line(outcomes)
    if known is not None and not detail:
        out.append(known)
    out.append(jobs_line(doc))
    out.append(count_line(doc))
    return out
