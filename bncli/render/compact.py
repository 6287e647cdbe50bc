"""What every subcommand prints: short numbers, one row per claim (the verdict and the numbers it
was made from), compact tables (bncli.render.fit fits them to the terminal: columns left out,
never a table split).

Numbers have 3-4 significant digits (scientific below 1e-3 and from 1e4, with 3 digits and a short
exponent: 1.35e-7); a number is one word (no spaces: '0.9148±0.012'), so Rich wraps tables between
numbers, never inside one. A relative difference beyond +900 % reads as a ratio (×1783).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from bncli.claim_text import beyond_text, ci_text, num, rel_text, verdict_label  # noqa: F401  (re-exported)
from bncli.render.claim_row import aggregate_words, claim_row, effect_text
from bncli.render.fit import KEY_HEADERS, drop_order, fit, narrow  # noqa: F401  (re-exported)
from bncli.render.palette import VERDICTS, verdict_style, verdict_symbol
from bncli.results import Claim

MARK = {"claimed": "✓", "against": "✗", "neither": "·"}
ARROW = {"lower": "↓", "higher": "↑"}


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
    return f"one-sided t vs margin, Holm over {n} claim{'s' if n != 1 else ''}" if n else \
        "one-sided t vs margin"


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


# --------------------------------------------------------------------------- verdicts


VERDICT_STYLE = {v: verdict_style(v) for v in VERDICTS}


def verdict_text(verdict: str, label: str | None = None, symbol: bool = True) -> Text:
    """The verdict in its palette colour, after its symbol (colour is never the only carrier);
    `label` is the text to show (default: the verdict)."""
    text = label if label is not None else verdict
    return Text(f"{verdict_symbol(verdict)} {text}" if symbol else text, style=verdict_style(verdict))


def has_p(claims: Sequence[Claim]) -> bool:
    return any(m.p_value is not None for c in claims for m in c.metrics)


def _one_baseline(claims: Sequence[Claim]) -> str | None:
    bases = {c.baseline for c in claims}
    return next(iter(bases)) if len(bases) == 1 else None


def _arm_cell(c: Claim, base: str | None) -> str:
    return c.arm if base is not None else f"{c.arm} vs {c.baseline}"


def claim_rows_table(claims: Sequence[Claim], title: str, budgets: bool = False) -> Table:
    """One row per claim x learning rate x arm: the verdict; the metric that decided it, with its
    paired effect and 95 % interval and its seeds beyond the margin; the claim's adjusted p
    (claim_row: every number is one the verdict was made from). `budgets`: also the verdict at
    40 %, 70 % and 100 % of the steps."""
    with_b = budgets and any(budgets_text(c) for c in claims)
    base = _one_baseline(claims)
    t = table(title if base is None else f"{title} (arms vs {base})")
    t.add_column("claim", no_wrap=True)
    t.add_column("lr", justify="right", no_wrap=True)
    t.add_column("arm vs baseline" if base is None else "arm")
    t.add_column("verdict", no_wrap=True)
    t.add_column("deciding metric")
    t.add_column("effect [95% CI]", justify="right")  # one word per number: wraps only at a note
    t.add_column("beyond", justify="right", no_wrap=True)
    with_p = any(c.p_adj is not None for c in claims)  # none below the seeds a test needs
    if with_p:
        t.add_column("p adj", justify="right", no_wrap=True)
    if with_b:
        t.add_column("budgets", no_wrap=True)
    for c in claims:
        r = claim_row(c)
        metric = f"{ARROW.get(r.better or '', '')} {short_metric(r.metric)}".strip() if r.metric else "-"
        t.add_row(c.claim, num(c.lr), _arm_cell(c, base), verdict_text(c.verdict, r.label), metric,
                  r.effect_text, r.beyond_text,
                  *([num(r.p_adj, 2) if r.p_adj is not None else "-"] if with_p else []),
                  *([budgets_text(c)] if with_b else []))
    return drop_order(t, "beyond", "p adj", "budgets", "deciding metric", "effect [95% CI]")


def claims_legend(claims: Sequence[Claim], left_out: Sequence[str] = (), detail: bool = False) -> Text:
    """What the claim rows' numbers are, in one or two lines."""
    ratio = any(claim_row(c).scale == "ratio" for c in claims)
    diff = any(claim_row(c).scale == "difference" for c in claims)
    what = ("arm/baseline − 1" if ratio else "") + (", or " if ratio and diff else "") + \
           ("arm − baseline in its units" if diff else "")
    if ratio and any(claim_row(c).effect_text.startswith("×") for c in claims):
        what += " (×: the ratio, past +900%)"
    text = (f"effect: deciding metric, paired {what}, ↓/↑ claimed; beyond: its seeds "
            "past the margin" + (f"; p adj: {family_text(claims)}" if any(c.p_adj is not None for c in claims)
                                 else ""))
    if any(c.verdict == "exploratory" for c in claims):
        text += "; exploratory: too few seeds for a test (→ the way it leans)"
    if left_out:
        text += f". Verdicts use complete, paired runs only; left out: {', '.join(left_out)}"
    if not detail:
        text += ". --detail: every metric"
    return Text(text + ".", style="dim")


def metrics_table(claims: Sequence[Claim], title: str = "Evidence: every metric of every claim") -> Table:
    """--detail: under a line naming each claim (lr, arm vs baseline), one row per metric: how a
    run's value is made, both arms' centres (what the effect compares), the paired effect with
    its interval, seeds beyond the margin, the metric's adjusted p and which way it points."""
    t = table(title)
    t.add_column("claim: metric (each run's value)")
    t.add_column("arm", justify="right", no_wrap=True)
    t.add_column("baseline", justify="right", no_wrap=True)
    t.add_column("effect [95% CI]", justify="right")  # one word per number: wraps only at a note
    t.add_column("beyond", justify="right", no_wrap=True)
    t.add_column("p adj", justify="right", no_wrap=True)
    t.add_column("way", no_wrap=True)
    for i, c in enumerate(claims):
        if not c.metrics:
            continue
        t.add_row(Text(f"{c.claim} lr {num(c.lr)} {c.arm} vs {c.baseline}", style="bold"), *[""] * 6)
        for j, m in enumerate(c.metrics):
            agg = aggregate_words(m.aggregate)
            kind = ", no worse than (non-inferiority)" if m.test == "non-inferiority" else ""
            name = f"  {ARROW.get(m.better, '')} {short_metric(m.name)}" + (f" ({agg}{kind})" if agg or kind else "")
            kn = f"{m.beyond[0]}/{m.beyond[1]}" if m.beyond else "-"
            t.add_row(name, num(m.arm_mean), num(m.baseline_mean), effect_text(m), kn,
                      num(m.p_adj, 2) if m.p_adj is not None else "-", MARK.get(m.points, ""),
                      end_section=j == len(c.metrics) - 1 and i < len(claims) - 1)
    return drop_order(t, "way", "beyond", "p adj", "baseline", "arm")


def metrics_legend() -> Text:
    return Text("arm, baseline: the centres the effect compares, over paired seeds (geometric means on "
                "the ratio scale, plain means on the difference scale); way: ✓ claimed, ✗ against, "
                "· neither (beyond the margin, at the claim's Holm factor).", style="dim")


def notes_text(claims: Sequence[Claim]) -> Text:
    """--detail: each claim's seeds, what decided it, its parts (C9) and its note, one item each."""
    lines = []
    for c in claims:
        bits = [f"{c.n_seeds} paired seed(s) {c.seeds}" if c.seeds else f"{c.n_seeds} paired seed(s)",
                f"evidence {c.evidence}"]
        if c.decided_by not in ("metrics", "", None):
            bits.append(f"decided by {c.decided_by}")
        if c.parts:
            bits.append("parts: " + ", ".join(f"{k} {v}" for k, v in c.parts.items()))
        if c.note:
            bits.append(f"note: {c.note}")
        lines.append(f"• {c.claim} lr {num(c.lr)} {c.arm} vs {c.baseline}: " + "; ".join(bits))
    return Text("\n".join(lines))


def regime_table(claims: Sequence[Claim]) -> Table | None:
    """The regime map: one row per claim and arm, its verdict at every learning rate it was run
    at (with the budgets), so a verdict that flips with the lr shows in one row. None when no claim
    was judged at two learning rates."""
    from bncli.regimes import regime_rows

    lrs, rows = regime_rows(claims)
    if not rows:
        return None
    t = table("Regimes: each claim's verdict per learning rate (seeds beyond the margin; budgets "
              "40→70→100% of the steps, S/R/I, lower case: exploratory)")
    t.add_column("claim", no_wrap=True)
    t.add_column("arm vs baseline")
    for lr in lrs:
        t.add_column(f"lr {num(lr)}")
    for r in rows:
        cells = []
        for lr in lrs:
            c = r["by_lr"].get(lr)
            if c is None:
                cells.append("")
                continue
            b = budgets_text(c)
            stab = f" ({stability_text(c)})" if c.beyond or c.stability is not None else ""
            cells.append(verdict_text(c.verdict, f"{verdict_label(c)}{stab}" + (f" {b}" if b else "")))
        t.add_row(r["claim"], f"{r['arm']} vs {r['baseline']}", *cells)
    return t


def claims_output(result: Any, title: str, detail: bool,
                  missing: str = "the spec needs a plain arm and a BN arm to compare") -> Any:
    """One row per claim x lr x arm and a one- or two-line legend; with `detail` also the
    evidence (every metric), the regime map and each claim's notes. A line saying why there is no
    verdict when there is none."""
    if not result.claims:
        return claims_block(result, title, missing)
    left = (result.tables.get("left_out") if hasattr(result, "tables") else None) or []
    parts: list[Any] = [claim_rows_table(result.claims, title, budgets=detail),
                        claims_legend(result.claims, left, detail)]
    if detail:
        if any(c.metrics for c in result.claims):
            parts += [metrics_table(result.claims), metrics_legend()]
        regimes = regime_table(result.claims)
        if regimes is not None:
            parts.append(regimes)
        parts.append(notes_text(result.claims))
    return Group(*parts)


def detail_hint(what: str = "the per-layer tables") -> Text:
    return Text(f"--detail prints {what} and each verdict's notes; --json and --out have every "
                "number.", style="dim")


def claims_table(claims: Sequence[Claim], title: str = "Claims") -> Table:
    """One row per (claim, learning rate, BN arm): the verdict and every number behind it, in
    words (one cell per claim; the batch's per-comparison view)."""
    with_p = has_p(claims)
    t = table(title)
    t.add_column("claim", no_wrap=True)
    t.add_column("lr", justify="right", no_wrap=True)
    t.add_column("arm vs baseline")
    t.add_column("verdict")
    t.add_column(f"metric: arm | baseline (Δ [95% CI]{', p, p adj' if with_p else ''}) → direction",
                 overflow="fold")
    for i, c in enumerate(claims):
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
            agg = f"; {aggregate_words(m.aggregate)} per run" if m.aggregate else ""
            fl = f"; floor {num(m.floor, 3)}" if m.floor else ""
            drop = (f"; not finite: arm {m.nonfinite_arm}, baseline {m.nonfinite_baseline} seed(s), "
                    "against their arm") if m.n_dropped else ""
            lines.append(
                f"{m.name} ({kind}{agg}{fl}{drop}): {num(m.arm_mean)} | {num(m.baseline_mean)} "
                f"({ci_text(m)}{p}{w}) → {m.points}"
            )
        if c.note:
            lines.append(f"note: {c.note}")
        t.add_row(c.claim, num(c.lr), f"{c.arm} vs {c.baseline}", verdict_text(c.verdict, verdict_label(c)),
                  "\n".join(lines), end_section=i < len(claims) - 1)
    return t


def claims_block(
    result: Any, title: str, missing: str = "the spec needs a plain arm and a BN arm to compare"
) -> Table | str:
    """The claims table (with the runs it left out), or one line saying why there is no verdict."""
    left = result.tables.get("left_out") if hasattr(result, "tables") else None
    if result.claims:
        t = claims_table(result.claims, title=title)
        if left:
            t.caption = f"verdicts use complete, paired runs only; left out: {', '.join(left)}"
        return t
    if result.interrupted:
        return "no verdict: interrupted before the arms to compare had finished"
    return f"no verdict: {missing}"
