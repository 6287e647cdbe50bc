"""The report's regime map (SCIENCE.md, Verdicts: Regimes): one row per document, claim and arm,
one column per learning rate, each cell coloured by its verdict (render/palette.py, with its
symbol) and labelled with the verdicts at 40→70→100 % of the budget and the seeds beyond the
margin. Drawn from saved claims only, and sized to its own text: the row labels, the legend and
the title are measured with matplotlib's renderer and the figure is made as wide as they need."""

from __future__ import annotations

import base64
import html
import textwrap
from collections.abc import Sequence
from typing import Any

from bncli.claim_text import beyond_text, num, verdict_label
from bncli.render.palette import VERDICTS, verdict_hex, verdict_ink, verdict_symbol
from bncli.results import Claim

FILENAME = "regimes.png"
SHOWN = ("supported", "refuted", "inconclusive", "exploratory")  # the legend's verdicts, in order
CAPTION = ("Regime map: each claim's verdict per learning rate (colour and symbol: ✓ supported, ✗ refuted, "
           "? inconclusive, ~ exploratory), the verdicts from the same runs at 40→70→100 % of the steps "
           "(S supported, R refuted, I inconclusive; lower case: exploratory, fewer than 3 paired seeds) and "
           "the seeds beyond the margin the claimed way (k/n).")
TITLE = "Verdict per learning rate (budgets 40→70→100 %, seeds beyond the margin)"
CELL_W, CELL_H = 0.82, 0.42  # inches per learning rate / per row
PAD = 0.08  # inches around the text at the figure's edges
LABEL_CHARS = 46  # a longer row label wraps at its " · " / spaces onto a second line
FONT = 7.5


def regime_grid(docs: Sequence[Any]) -> tuple[list[float], list[tuple[str, dict[float, Claim]]]]:
    """(learning rates, rows): a row per (document, claim, arm vs baseline) with its claims by lr."""
    rows: dict[tuple[str, str, str, str], dict[float, Claim]] = {}
    for d in docs:
        for c in d.result.claims:
            rows.setdefault((d.label, c.claim, c.arm, c.baseline), {})[c.lr] = c
    lrs = sorted({lr for r in rows.values() for lr in r})
    return lrs, [(f"{k[0]} · {k[1]} {k[2]} vs {k[3]}", v) for k, v in rows.items()]


def row_label(text: str) -> str:
    """A row's label on lines of about LABEL_CHARS, broken after its " · " separators (at spaces
    only where a part alone is longer; never inside a word, never cut)."""
    lines: list[str] = []
    for part in text.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= LABEL_CHARS:
            lines[-1] += " · " + part
        else:
            if lines:
                lines[-1] += " ·"
            lines += textwrap.wrap(part, LABEL_CHARS, break_long_words=False, break_on_hyphens=False) or [part]
    return "\n".join(lines)


def _letter(v: str) -> str:
    from bncli.render.compact import VERDICT_LETTER

    if v.startswith("exploratory"):
        return VERDICT_LETTER.get(v.split("→")[-1].strip(), "E").lower()
    return VERDICT_LETTER.get(v, "?")


def cell_text(c: Claim) -> str:
    """'? I→I→I' over '3/3': the verdict's symbol, its budgets (or its word), the seeds beyond."""
    b = c.budgets or {}
    budgets = "→".join(_letter(b[k]) for k in sorted(b, key=lambda k: float(k.rstrip("%")))) if len(b) >= 2 else ""
    head = f"{verdict_symbol(c.verdict)} {budgets or verdict_label(c).split(' [')[0]}"
    beyond = beyond_text(c)
    return head + (f"\n{beyond}" if beyond != "-" else "")


def _inches(artist: Any, renderer: Any, dpi: float) -> Any:
    """An artist's drawn extent in inches (x0, y0, x1, y1), from the renderer."""
    bb = artist.get_window_extent(renderer)
    return bb.x0 / dpi, bb.y0 / dpi, bb.x1 / dpi, bb.y1 / dpi


def regime_figure(docs: Sequence[Any]) -> Any:
    """The regime map as a matplotlib Figure sized to its text; None when no claim was made.
    Drawn once at a provisional size; its labels, legend and title are then measured with the
    renderer, and the figure and the grid are resized so that every text lies inside it."""
    lrs, rows = regime_grid(docs)
    if not rows:
        return None
    from bncli.render.figstyle import DPI, style

    with style() as plt:
        grid_w, grid_h = CELL_W * len(lrs), CELL_H * len(rows)
        # measured at the resolution it is saved at: hinted text is not exactly as wide at every dpi
        fig = plt.figure(figsize=(grid_w + 4, grid_h + 1.5), dpi=DPI)
        ax = fig.add_axes((0.3, 0.1, 0.5, 0.7))
        ax.grid(False)
        for i, (_, by_lr) in enumerate(rows):
            for j, lr in enumerate(lrs):
                c = by_lr.get(lr)
                face = verdict_hex(c.verdict) if c is not None else "#FFFFFF"
                ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=face, edgecolor="white", linewidth=2))
                ax.text(j + 0.5, i + 0.5, cell_text(c) if c is not None else "·", ha="center", va="center",
                        fontsize=FONT, color=verdict_ink(c.verdict) if c is not None else "#5B5B5B")
        ax.set_xlim(0, len(lrs))
        ax.set_ylim(len(rows), 0)
        ax.set_xticks([j + 0.5 for j in range(len(lrs))], [f"η {num(lr)}" for lr in lrs], fontsize=FONT + 0.5)
        ax.set_yticks([i + 0.5 for i in range(len(rows))], [row_label(label) for label, _ in rows], fontsize=FONT)
        ax.tick_params(length=0)
        for s in ax.spines.values():
            s.set_visible(False)
        handles = [plt.Rectangle((0, 0), 1, 1, facecolor=VERDICTS[v][0], edgecolor="#5B5B5B", linewidth=0.4)
                   for v in SHOWN]
        leg = ax.legend(handles, [f"{verdict_symbol(v)} {v}" for v in SHOWN], loc="upper left",
                        bbox_to_anchor=(1.0, 1.0), borderaxespad=0.0, fontsize=FONT, frameon=False)
        title = fig.text(0, 1, TITLE, ha="left", va="top", fontsize=9)
        _fit(fig, ax, leg, title, len(lrs), grid_h)
    return fig


def _fit(fig: Any, ax: Any, leg: Any, title: Any, n_lrs: int, grid_h: float) -> None:
    """Size the figure to what its texts measure: a cell as wide as its widest text, left margin =
    the widest row label, right margin = the legend, top = the title, bottom = the learning-rate
    labels (inches)."""
    dpi = fig.dpi
    renderer = fig.canvas.get_renderer()
    cell_text_w = max((_inches(t, renderer, dpi)[2] - _inches(t, renderer, dpi)[0] for t in ax.texts), default=0.0)
    grid_w = n_lrs * max(CELL_W, cell_text_w + 0.12)
    ax_x0, ax_y0, ax_x1, ax_y1 = _inches(ax, renderer, dpi)
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    left = max((ax_x0 - _inches(t, renderer, dpi)[0] for t in labels), default=0.0)
    xlabels = [t for t in ax.get_xticklabels() if t.get_text()]
    below = max((ax_y0 - _inches(t, renderer, dpi)[1] for t in xlabels), default=0.0)
    lx0, ly0, lx1, ly1 = _inches(leg, renderer, dpi)
    right = lx1 - ax_x1
    leg_h = ly1 - ly0
    tx0, ty0, tx1, ty1 = _inches(title, renderer, dpi)
    title_w, title_h = tx1 - tx0, ty1 - ty0
    gap = 0.1  # between the title and the grid
    width = max(PAD + left + grid_w + right + PAD, PAD + title_w + PAD)
    height = PAD + title_h + gap + max(grid_h, leg_h) + below + PAD
    fig.set_size_inches(width, height)
    ax.set_position(((PAD + left) / width, (PAD + below + max(grid_h, leg_h) - grid_h) / height,
                     grid_w / width, grid_h / height))
    title.set_position((PAD / width, 1 - PAD / height))


def regime_png(docs: Sequence[Any]) -> bytes | None:
    """The regime map as PNG bytes; None when no claim was made."""
    fig = regime_figure(docs)
    if fig is None:
        return None
    from bncli.render.figstyle import png_bytes

    return png_bytes(fig)


def png_width_in(png: bytes) -> float:
    """A PNG's width in inches at the figures' resolution (its IHDR width / figstyle.DPI)."""
    import struct

    from bncli.render.figstyle import DPI

    return struct.unpack(">I", png[16:20])[0] / DPI if png[:8] == b"\x89PNG\r\n\x1a\n" else 0.0


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
                b = cell_text(c).split("\n")[0].split(" ", 1)[1]
                lines.append(f"- {label}, {c.claim}, η={num(c.lr)}, {arm}: {verdict_symbol(c.verdict)} "
                             f"{verdict_label(c)}, {c.n_seeds} paired seed(s), {beyond_text(c)} beyond the margin"
                             + (f", budgets {b}" if c.budgets and len(c.budgets) >= 2 else ""))
    return lines + [""]


def regimes_html(report: Any) -> str:
    png = getattr(report, "regime_png", None)
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    width = png_width_in(png)
    size = f' style="width:{width:.2f}in"' if width else ""  # its own size: the text as drawn, never cut
    return (f'<h3>Regimes</h3><figure id="regimes" class="regimes"><img src="data:image/png;base64,{data}"{size} '
            f'alt="regime map"><figcaption>{html.escape(CAPTION)}</figcaption></figure>')
