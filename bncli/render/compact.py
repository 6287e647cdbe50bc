"""What every subcommand prints by default: short numbers, the short claims table, one compact
metrics table, and tables that fit the terminal without splitting a number across lines.

Numbers have 3-4 significant digits (scientific below 1e-3 and from 1e4, with 3 digits and a short
exponent: 1.35e-7); a number is one word (no spaces: '0.9148±0.012'), so Rich wraps tables between numbers,
never inside one. A relative difference beyond +900 % reads as a ratio (×1783).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from bncli.claim_text import beyond_text, ci_text, num, rel_text, verdict_label  # noqa: F401  (re-exported)
from bncli.results import Claim

MARK = {"claimed": "✓", "against": "✗", "neither": "·"}
ARROW = {"lower": "↓", "higher": "↑"}
# leading columns that name a row; a table split for width repeats them in every part
KEY_HEADERS = {"lr", "arm", "layer", "site", "α", "claim", "arm vs baseline", "phase (step)", "when"}


def count(value: float | int | None) -> str:
    """A whole number (steps, counts) without decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return num(value)
    return str(int(round(float(value))))


def pm(pair: Sequence[float | None], sig: int = 4) -> str:
    """'mean±std' as one word (just the mean when std is 0 or missing: one seed)."""
    m, s = (list(pair) + [None, None])[:2]
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "-"
    if not s or (isinstance(s, float) and not math.isfinite(s)):
        return num(m, sig)
    return f"{num(m, sig)}±{num(s, 2)}"


VERDICT_LETTER = {"supported": "S", "refuted": "R", "inconclusive": "I", "exploratory": "E"}


def stability_text(c: Claim) -> str:
    """Seeds beyond the margin (k/n) beside a verdict (schema 3 documents: their stability)."""
    return beyond_text(c)


def family_text(claims: Sequence[Claim]) -> str:
    """'Holm across 4 claims' (the largest family among the claims shown)."""
    n = max((getattr(c, "family", 0) or 0 for c in claims), default=0)
    return f"one-sided t vs the margin, Holm across {n} claim(s)" if n else "one-sided t vs the margin"


def budgets_text(c: Claim) -> str:
    """'I→R→R': the verdict at each budget (40 %, 70 %, 100 % of the steps), same runs."""
    b = getattr(c, "budgets", None) or {}
    if len(b) < 2:
        return ""
    keys = sorted(b, key=lambda k: float(k.rstrip("%")))
    return "→".join(_letter(b[k]) for k in keys)


def _letter(v: str) -> str:
    """S/R/I for a verdict; lower case s/r/i for an exploratory one's leaning."""
    if v.startswith("exploratory"):
        return VERDICT_LETTER.get(v.split("→")[-1].strip(), "E").lower()
    return VERDICT_LETTER.get(v, "?")


def short_metric(name: str) -> str:
    """A claim metric's name without its trailing explanation in parentheses:
    'loss variation (max − min of L over the η′ grid)' -> 'loss variation'."""
    out = name
    while True:
        m = re.search(r"\s+\((?:[^()]|\([^()]*\))*\)\s*$", out)
        if not m or m.start() < 6:
            return out
        out = out[: m.start()]


def table(title: str, caption: str | None = None) -> Table:
    """A compact table: no vertical rules (two spaces between columns), left-aligned title."""
    return Table(title=title, title_justify="left", caption=caption, caption_justify="left",
                 box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))


def has_p(claims: Sequence[Claim]) -> bool:
    return any(m.p_value is not None for c in claims for m in c.metrics)


def short_claims_table(claims: Sequence[Claim], title: str) -> Table:
    """One row per metric: claim, lr, arm vs baseline, verdict, stability and budgets on the claim's
    first row, then the metric, both means, the paired effect Δ with its interval, the
    Holm-adjusted p (only with enough seeds for a test) and whether it points the claimed way."""
    with_p = has_p(claims)
    with_b = any(budgets_text(c) for c in claims)
    with_s = any(c.beyond or c.stability is not None for c in claims)
    t = table(title, caption="✓/✗/·: claimed way (↓/↑) beyond the margin / other way / neither; Δ: paired "
              "effect (ratio of geometric means − 1) [95% t-CI, %]"
              + (f"; p adj: {family_text(claims)}" if with_p else "")
              + ("; n·beyond: paired seeds·seeds beyond the margin (weakest metric)" if with_s
                 else "; exploratory: < 3 paired seeds")
              + ("; budgets: 40→70→100% of the steps" if with_b else "") + ".")
    t.add_column("claim")
    t.add_column("lr", justify="right", no_wrap=True)
    bases = {c.baseline for c in claims}
    one_base = len(bases) == 1  # then the header names it, and the column is narrower
    t.add_column(f"arm (vs {next(iter(bases))})" if one_base else "arm vs baseline", max_width=20)
    t.add_column("verdict", no_wrap=True)
    if with_s:
        t.add_column("n·beyond", justify="right", no_wrap=True)
    if with_b:
        t.add_column("budgets", no_wrap=True)
    t.add_column("metric")
    t.add_column("arm", justify="right", no_wrap=True)
    t.add_column("baseline", justify="right", no_wrap=True)
    t.add_column("Δ [CI]", justify="right", no_wrap=True)
    if with_p:
        t.add_column("p adj", justify="right", no_wrap=True)
    t.add_column("", no_wrap=True)
    for i, c in enumerate(claims):
        for j, m in enumerate(c.metrics or [None]):  # type: ignore[list-item]
            arm = c.arm if one_base else f"{c.arm} vs {c.baseline}"
            head = ([c.claim, num(c.lr), arm, verdict_text(c.verdict, verdict_label(c)),
                     *([f"{c.n_seeds}·{stability_text(c)}"] if with_s else []),
                     *([budgets_text(c)] if with_b else [])] if j == 0
                    else ["", "", "", "", *([""] if with_s else []), *([""] if with_b else [])])
            if m is None:
                t.add_row(*head, "-", "", "", "", *([""] if with_p else []), "")
                continue
            cells = [f"{ARROW.get(m.better, '')}{'≈' if m.test == 'non-inferiority' else ''} "
                     f"{short_metric(m.name)}", num(m.arm_mean), num(m.baseline_mean), ci_text(m)]
            if with_p:
                cells.append(num(m.p_adj, 2) if m.p_adj is not None else "")
            t.add_row(*head, *cells, MARK.get(m.points, ""),
                      end_section=j == len(c.metrics) - 1 and i < len(claims) - 1)
    return t


def regime_table(claims: Sequence[Claim]) -> Table | None:
    """The regime map: one row per claim and arm, its verdict at every learning rate it was run
    at (with the budgets), so a verdict that flips with the lr shows in one row. None when no claim
    was judged at two learning rates (the claims table's budgets column is then the whole row)."""
    from bncli.regimes import regime_rows

    lrs, rows = regime_rows(claims)
    if not rows:
        return None
    t = table("Regimes: each claim's verdict per learning rate (budgets 40→70→100% of the steps)",
              caption="(seeds beyond the margin); budgets S/R/I, lower case: exploratory")
    t.add_column("claim")
    t.add_column("arm vs baseline", max_width=24)
    for lr in lrs:
        t.add_column(f"lr {num(lr)}", no_wrap=True)
    for r in rows:
        cells = []
        for lr in lrs:
            c = r["by_lr"].get(lr)
            if c is None:
                cells.append("")
                continue
            b = budgets_text(c)
            stab = f" ({stability_text(c)})" if c.beyond or c.stability is not None else ""
            lab = verdict_label(c)
            cells.append(verdict_text(c.verdict, f"{lab}{stab}" + (f" {b}" if b else "")))
        t.add_row(r["claim"], f"{r['arm']} vs {r['baseline']}", *cells)
    return t


def claims_output(result: Any, title: str, detail: bool,
                  missing: str = "the spec needs a plain arm and a BN arm to compare") -> Any:
    """The short claims table, or with --detail the full one with every note."""
    if detail or not result.claims:
        block = claims_block(result, title, missing)
    else:
        block = short_claims_table(result.claims, title)
        left = result.tables.get("left_out") if hasattr(result, "tables") else None
        if left:
            block.caption = f"{block.caption} Verdicts use complete, paired runs only; left out: {', '.join(left)}"
    regimes = regime_table(result.claims) if result.claims else None
    if regimes is None:
        return block
    from rich.console import Group

    return Group(block, regimes)


def detail_hint(what: str = "the per-layer tables") -> Text:
    return Text(f"--detail prints {what} and each verdict's notes; --json and --out have every "
                "number.", style="dim")


# --------------------------------------------------------------------------- fitting the width


def _min_width(console: Console, t: Table) -> int:
    """The narrowest the table can be with every column at least as wide as its longest word
    (Rich's own measurement is capped at the console's width)."""
    try:
        options = console.options.update(max_width=10**6)
        return sum(t._measure_column(console, options, c).minimum for c in t.columns) + t._extra_width
    except AttributeError:
        return Measurement.get(console, console.options, t).minimum


def _key_count(t: Table) -> int:
    n = 0
    for col in t.columns:
        if str(col.header) in KEY_HEADERS:
            n += 1
        else:
            break
    return n


def _sub_table(t: Table, cols: Sequence[int], part: int, parts: int) -> Table:
    title = t.title
    if title is not None and part > 0:
        title = f"{title} (continued, {part + 1}/{parts})" if isinstance(title, str) else title
    columns = [Column(header=t.columns[i].header, justify=t.columns[i].justify, style=t.columns[i].style,
                      no_wrap=t.columns[i].no_wrap, overflow=t.columns[i].overflow,
                      min_width=t.columns[i].min_width, max_width=t.columns[i].max_width,
                      ratio=t.columns[i].ratio) for i in cols]
    new = Table(*columns, title=title if part == 0 or isinstance(title, str) else None,
                title_justify=t.title_justify, caption=t.caption if part == parts - 1 else None,
                caption_justify=t.caption_justify, box=t.box, show_lines=t.show_lines,
                pad_edge=t.pad_edge, show_header=t.show_header, header_style=t.header_style,
                title_style=t.title_style, show_edge=t.show_edge, padding=t.padding)
    cells = [list(t.columns[i].cells) for i in cols]
    for r, row in enumerate(t.rows):
        new.add_row(*(c[r] for c in cells), style=row.style, end_section=row.end_section)
    return new


def _set_widths(t: Table, console: Console) -> Table:
    """Give each column a width between its narrowest (its longest word) and its widest layout,
    the spare room going first to cells, then headers, and to the columns that need least of it to
    stay on one line. Rich's own squeeze cuts
    the widest columns below their longest word ("|Δσ²|/ste⏎p*") while narrower ones have room;
    a table whose narrowest layout is still too wide is left to Rich (fit splits those first)."""
    try:
        options = console.options
        ranges = [t._measure_column(console, options, col) for col in t.columns]
        pads = [t._get_padding_width(i) for i in range(len(t.columns))]
        room = console.width - t._extra_width
    except AttributeError:  # another Rich: keep its layout
        return t
    lo = [r.minimum for r in ranges]
    hi = [max(r.maximum, r.minimum) for r in ranges]
    if sum(hi) <= room or sum(lo) > room:
        return t
    body = []  # what the cells need on one line (headers may wrap before cells do)
    for col, pad, a, b in zip(t.columns, pads, lo, hi):
        need = max((Measurement.get(console, options, c).maximum for c in col.cells), default=0)
        body.append(min(b, max(a, need + pad)))
    widths = list(lo)
    spare = room - sum(lo)
    # cells before headers; in each round the columns that need least first: as few wrap as can be
    for target in (body, hi):
        for i in sorted(range(len(widths)), key=lambda k: target[k] - widths[k]):
            give = max(0, min(target[i] - widths[i], spare))
            widths[i] += give
            spare -= give
    for col, w, pad in zip(t.columns, widths, pads):
        col.width = max(1, w - pad)
    return t


def fit(t: Table, console: Console) -> list[Table]:
    """The table, or several tables of its columns (the key columns repeated in each) when even
    its narrowest layout (every word on a line of its own) is wider than the console: Rich would
    otherwise cut numbers in two. Column widths never go below a column's longest word."""
    return [_set_widths(part, console) for part in _split(t, console)]


def _split(t: Table, console: Console) -> list[Table]:
    width = console.width
    if _min_width(console, t) <= width or len(t.columns) < 3:
        return [t]
    keys = _key_count(t)
    rest = list(range(keys, len(t.columns)))
    groups: list[list[int]] = []
    current: list[int] = []
    for i in rest:
        trial = _sub_table(t, list(range(keys)) + current + [i], 0, 1)
        if current and _min_width(console, trial) > width:
            groups.append(current)
            current = [i]
        else:
            current.append(i)
    if current:
        groups.append(current)
    if len(groups) <= 1:
        return [t]
    return [_sub_table(t, list(range(keys)) + g, k, len(groups)) for k, g in enumerate(groups)]


VERDICT_STYLE = {"supported": "bold green", "refuted": "bold red", "inconclusive": "yellow",
                 "exploratory": "dim"}


def verdict_text(verdict: str, label: str | None = None) -> Text:
    """The verdict styled by its kind; `label` is the text to show (default: the verdict)."""
    return Text(label if label is not None else verdict, style=VERDICT_STYLE.get(verdict, ""))


def claims_table(claims: Sequence[Claim], title: str = "Claims") -> Table:
    """One row per (claim, learning rate, BN arm): the verdict and every number behind it."""
    with_p = has_p(claims)
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("claim")
    table.add_column("lr", justify="right", no_wrap=True)
    table.add_column("arm vs baseline")
    table.add_column("verdict")
    table.add_column(f"metric: arm | baseline (Δ [95% CI]{', p, p adj' if with_p else ''}) → direction",
                     overflow="fold")
    for c in claims:
        fam = f"; claim p adj={num(c.p_adj, 3)} (Holm across {c.family})" if c.p_adj is not None else ""
        lines = [f"{c.n_seeds} paired seed(s) {c.seeds}; evidence: {c.evidence}; decided by {c.decided_by}; "
                 f"beyond the margin {stability_text(c)}{fam}"
                 + (f"; budgets 40→70→100%: {budgets_text(c)}" if budgets_text(c) else "")]
        if c.parts:
            lines.append("parts: " + ", ".join(f"{k} {v}" for k, v in c.parts.items()))
        for m in c.metrics:
            p = (f", p claimed={num(m.p_claimed, 3)}, p against={num(m.p_against, 3)}"
                 if m.p_claimed is not None else f", p={num(m.p_value, 3)}" if m.p_value is not None else "")
            w = f", {m.beyond[0]}/{m.beyond[1]} seeds beyond" if m.beyond else ""
            w += ", identical seeds (check the seeding)" if m.identical else ""
            kind = ("no worse than the baseline (non-inferiority)" if m.test == "non-inferiority"
                    else f"{m.better} is claimed")
            agg = f"; {m.aggregate} per run" if m.aggregate else ""
            fl = f"; floor {num(m.floor, 3)}" if m.floor else ""
            drop = (f"; not finite: arm {m.nonfinite_arm}, baseline {m.nonfinite_baseline} seed(s), "
                    "against their arm") if m.n_dropped else ""
            lines.append(
                f"{m.name} ({kind}{agg}{fl}{drop}): {num(m.arm_mean)} | {num(m.baseline_mean)} "
                f"({ci_text(m)}{p}{w}) → {m.points}"
            )
        if c.note:
            lines.append(f"note: {c.note}")
        table.add_row(c.claim, num(c.lr), f"{c.arm} vs {c.baseline}", verdict_text(c.verdict, verdict_label(c)),
                      "\n".join(lines))
    return table


def claims_block(
    result: Any, title: str, missing: str = "the spec needs a plain arm and a BN arm to compare"
) -> Table | str:
    """The claims table (with the runs it left out), or one line saying why there is no verdict."""
    left = result.tables.get("left_out") if hasattr(result, "tables") else None
    if result.claims:
        table = claims_table(result.claims, title=title)
        if left:
            table.caption = (f"verdicts use complete, paired runs only; left out: {', '.join(left)}")
        return table
    if result.interrupted:
        return "no verdict: interrupted before the arms to compare had finished"
    return f"no verdict: {missing}"
