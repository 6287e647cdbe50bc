"""Shared rendering: number formatting, the claims table; atomic writes re-exported from bncli.io."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from bncli.io import atomic_write_bytes, atomic_write_json, atomic_write_text, current_umask  # noqa: F401
from bncli.results import Claim
from bncli.stats import fmt  # noqa: F401  (re-exported for the renderers)

VERDICT_STYLE = {"supported": "bold green", "refuted": "bold red", "inconclusive": "yellow",
                 "exploratory": "dim"}


def fmt_pm(pair: Sequence[float], digits: int = 4) -> str:
    m, s = pair
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "-"
    if not s:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ± {fmt(s, 2)}"


def verdict_text(verdict: str, label: str | None = None) -> Text:
    """The verdict styled by its kind; `label` is the text to show (default: the verdict)."""
    return Text(label if label is not None else verdict, style=VERDICT_STYLE.get(verdict, ""))


def claims_table(claims: Sequence[Claim], title: str = "Claims") -> Table:
    """One row per (claim, learning rate, BN arm): the verdict and every number behind it."""
    from bncli.render.compact import budgets_text, ci_text, has_p, num, stability_text, verdict_label

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
