"""The report's regime map (SCIENCE.md, Verdicts: Regimes): one row per document, claim and arm,
one column per learning rate, each cell coloured by its verdict and labelled with the verdicts at
40→70→100 % of the budget and the seeds beyond the margin. Drawn from saved claims only."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

from bncli.render.compact import budgets_text, num, stability_text, verdict_label
from bncli.results import Claim

FILENAME = "regimes.png"
COLOR = {"supported": "#4C72B0", "refuted": "#DD8452", "inconclusive": "#E5C84A", "exploratory": "#D9D9D9"}
CAPTION = ("Regime map: each claim's verdict per learning rate (colour), the verdicts from the same runs "
           "at 40→70→100 % of the steps (S supported, R refuted, I inconclusive; lower case: exploratory, "
           "fewer than 3 paired seeds) and the seeds beyond the margin the claimed way (k/n).")


def regime_grid(docs: Sequence[Any]) -> tuple[list[float], list[tuple[str, dict[float, Claim]]]]:
    """(learning rates, rows): a row per (document, claim, arm vs baseline) with its claims by lr."""
    rows: dict[tuple[str, str, str, str], dict[float, Claim]] = {}
    for d in docs:
        for c in d.result.claims:
            rows.setdefault((d.label, c.claim, c.arm, c.baseline), {})[c.lr] = c
    lrs = sorted({lr for r in rows.values() for lr in r})
    return lrs, [(f"{k[0]} · {k[1]} {k[2]} vs {k[3]}", v) for k, v in rows.items()]


def regime_png(docs: Sequence[Any]) -> bytes | None:
    """The regime map as PNG bytes; None when no claim was made."""
    lrs, rows = regime_grid(docs)
    if not rows:
        return None
    from bncli.render.figstyle import png_bytes, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(lrs), 0.9 + 0.38 * len(rows)))
    for i, (_, by_lr) in enumerate(rows):
        for j, lr in enumerate(lrs):
            c = by_lr.get(lr)
            color = COLOR.get(c.verdict, "white") if c is not None else "white"
            ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=color, edgecolor="white", linewidth=2))
            if c is not None:
                b = budgets_text(c)
                text = (b or c.verdict[:5]) + (f"\n{stability_text(c)}" if c.beyond or c.stability is not None
                                                else "")
                ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, len(lrs))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([j + 0.5 for j in range(len(lrs))], [f"lr {num(lr)}" for lr in lrs])
    ax.set_yticks([i + 0.5 for i in range(len(rows))], [label for label, _ in rows], fontsize=7)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=col) for col in COLOR.values()]
    ax.legend(handles, list(COLOR), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    ax.set_title("Verdict per learning rate (budgets 40→70→100 %, seeds beyond the margin)", fontsize=9, loc="left")
    return png_bytes(fig)


def regimes_markdown(report: Any, files_dir: str) -> list[str]:
    """The report's regime section in Markdown (the PNG is written beside it)."""
    if getattr(report, "regime_png", None) is None:
        return []
    lines = ["### Regimes", "", f"![regime map]({files_dir}/{FILENAME})", "", f"*{CAPTION}*", ""]
    for d in report.docs:
        for c in d.result.claims:
            if c.budgets or c.verdict == "exploratory" or c.decided_by != "metrics":
                from bncli.render.md import _md

                label, arm = _md(d.label), _md(c.arm)  # names are text: no code span, link or HTML
                lines.append(f"- {label}, {c.claim}, η={num(c.lr)}, {arm}: {verdict_label(c)}, "
                             f"{c.n_seeds} paired seed(s), {stability_text(c)} beyond the margin"
                             + (f", budgets {budgets_text(c)}" if budgets_text(c) else ""))
    return lines + [""]


def regimes_html(report: Any) -> str:
    png = getattr(report, "regime_png", None)
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return (f'<h3>Regimes</h3><figure id="regimes"><img src="data:image/png;base64,{data}" alt="regime map">'
            f"<figcaption>{html.escape(CAPTION)}</figcaption></figure>")
