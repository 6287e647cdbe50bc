"""Tables that fit the terminal: a table too wide for it leaves columns out in a fixed order (never
split in two, never a row cut), and the room is shared so that the table takes as few lines as it
can without any column going below its longest word (Rich alone cuts numbers: '6.33e+0⏎0')."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

# leading columns that name a row: never left out when a table is too wide for the terminal
KEY_HEADERS = {"lr", "arm", "layer", "site", "α", "claim", "arm vs baseline", "phase (step)", "when"}


def drop_order(t: Table, *headers: str) -> Table:
    """Declare which columns a terminal too narrow for `t` leaves out first, in this order (after
    them, the rightmost column that does not name the row goes, then the next)."""
    t.drop_order = list(headers)  # type: ignore[attr-defined]
    return t


def _min_width(console: Console, t: Table) -> int:
    """The narrowest the table can be with every column at least as wide as its longest word
    (Rich's own measurement is capped at the console's width)."""
    try:
        options = console.options.update(max_width=10**6)
        return sum(_col_min(console, options, t, i) for i in range(len(t.columns))) + t._extra_width
    except AttributeError:
        return Measurement.get(console, console.options, t).minimum


def _col_min(console: Console, options: Any, t: Table, i: int) -> int:
    """A column's narrowest width: its longest word, and its whole header when it does not wrap
    (Rich would cut 'p adj' to 'p ad')."""
    col = t.columns[i]
    low = t._measure_column(console, options, col).minimum
    if col.no_wrap:
        cells = [*col.cells, *([col.header] if t.show_header else [])]
        widest = max((max(map(cell_len, _plain(c).split("\n"))) for c in cells), default=0)
        low = max(low, widest + t._get_padding_width(i))
    return low


def _key_count(t: Table) -> int:
    n = 0
    for col in t.columns:
        if str(col.header) in KEY_HEADERS or str(col.header).startswith("arm vs "):
            n += 1
        else:
            break
    return max(n, 1)


def _sub_table(t: Table, cols: Sequence[int], caption: str | None = None) -> Table:
    """`t` with only the columns `cols` (same rows, style, title)."""
    columns = [Column(header=t.columns[i].header, justify=t.columns[i].justify, style=t.columns[i].style,
                      no_wrap=t.columns[i].no_wrap, overflow=t.columns[i].overflow,
                      min_width=t.columns[i].min_width, max_width=t.columns[i].max_width,
                      ratio=t.columns[i].ratio) for i in cols]
    new = Table(*columns, title=t.title, title_justify=t.title_justify,
                caption=caption if caption is not None else t.caption,
                caption_justify=t.caption_justify, box=t.box, show_lines=t.show_lines,
                pad_edge=t.pad_edge, show_header=t.show_header, header_style=t.header_style,
                title_style=t.title_style, show_edge=t.show_edge, padding=t.padding)
    cells = [list(t.columns[i].cells) for i in cols]
    for r, row in enumerate(t.rows):
        new.add_row(*(c[r] for c in cells), style=row.style, end_section=row.end_section)
    return new


def narrow(t: Table, console: Console) -> Table:
    """`t`, or `t` without the columns a terminal this narrow has no room for: first those its
    drop_order names, in that order, then from the right, never the columns that name a row.
    Every row stays whole and in one table; the caption says what was left out."""
    width = console.width
    if _min_width(console, t) <= width:
        return t
    headers = [str(c.header) for c in t.columns]
    keys = _key_count(t)
    named = [headers.index(h) for h in getattr(t, "drop_order", []) if h in headers[keys:]]
    order = named + [i for i in reversed(range(keys, len(headers))) if i not in named]
    keep = list(range(len(headers)))
    left: list[str] = []
    for i in order:
        if _min_width(console, _sub_table(t, keep)) <= width:
            break
        keep.remove(i)
        left.append(headers[i])
    if not left:
        return t
    note = f"not shown at {width} columns: {', '.join(left)} (--json has them)"
    caption = f"{t.caption}\n{note}" if isinstance(t.caption, str) and t.caption else note
    return _sub_table(t, keep, caption=caption)


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell).plain
        except Exception:  # not markup after all: its characters as they are
            return cell
    return ""


def _wrapped_lines(text: str, width: int) -> int:
    """Lines a cell takes at `width`, wrapped at spaces like Rich (a word wider than the column
    folds)."""
    if width <= 0:
        return 1
    total = 0
    for para in text.split("\n") or [""]:
        lines, used = 1, 0
        for word in para.split():
            n = cell_len(word)
            if used and used + 1 + n <= width:
                used += 1 + n
            elif not used and n <= width:
                used = n
            else:
                if used:
                    lines += 1
                lines += (n - 1) // width
                used = n % width or width
        total += lines
    return total


def _set_widths(t: Table, console: Console) -> Table:
    """Give each column a width between its narrowest (its longest word) and its widest layout,
    so that the table takes as few lines as it can: the spare room goes, a step at a time, where
    it saves the most lines per column of room (rows count once however many of their cells
    wrap; the header row too). Rich's own squeeze cuts the widest columns below their longest word
    ("|Δσ²|/ste⏎p*") while narrower ones have room; a table whose narrowest layout is still too
    wide is left to Rich."""
    try:
        options = console.options
        ranges = [t._measure_column(console, options, col) for col in t.columns]
        pads = [t._get_padding_width(i) for i in range(len(t.columns))]
        room = console.width - t._extra_width
        lo = [max(r.minimum, _col_min(console, options, t, i)) for i, r in enumerate(ranges)]
    except AttributeError:  # another Rich: keep its layout
        return t
    hi = [max(r.maximum, low) for r, low in zip(ranges, lo)]
    if sum(hi) <= room or sum(lo) > room:
        return t
    n_rows = len(t.rows)
    # lines of every cell (row index) and of the header (index n_rows), per column and width
    cells = [[_plain(c) for c in col.cells] + [_plain(col.header) if t.show_header else ""]
             for col in t.columns]
    cache: dict[tuple[int, int], list[int]] = {}

    def lines(i: int, w: int) -> list[int]:
        key = (i, w)
        if key not in cache:
            if t.columns[i].no_wrap:
                cache[key] = [1] * (n_rows + 1)
            else:
                cache[key] = [_wrapped_lines(c, w - pads[i]) for c in cells[i]]
        return cache[key]

    def total(ws: list[int]) -> int:
        per = [lines(i, w) for i, w in enumerate(ws)]
        return sum(max(p[r] for p in per) for r in range(n_rows + 1))

    widths = list(lo)
    spare = room - sum(lo)
    while spare > 0:
        base = total(widths)
        best: tuple[float, int, int] | None = None
        for i in range(len(widths)):
            now = lines(i, widths[i])
            for w in range(widths[i] + 1, min(hi[i], widths[i] + spare) + 1):
                if lines(i, w) == now:
                    continue
                trial = widths[:i] + [w] + widths[i + 1:]
                gain = base - total(trial)
                if gain > 0:
                    score = gain / (w - widths[i])
                    if best is None or score > best[0]:
                        best = (score, i, w)
                    break
                now = lines(i, w)
        if best is None:  # no single column saves a line: widen the one whose cells wrap most
            sums = [(sum(lines(i, widths[i])) - sum(lines(i, min(hi[i], widths[i] + spare))), i)
                    for i in range(len(widths))]
            gain, i = max(sums)
            if gain <= 0:
                break
            w = widths[i] + 1
            while w < min(hi[i], widths[i] + spare) and sum(lines(i, w)) == sum(lines(i, widths[i])):
                w += 1
            best = (0.0, i, w)
        _, i, w = best
        spare -= w - widths[i]
        widths[i] = w
    for col, w, pad in zip(t.columns, widths, pads):
        col.width = max(1, w - pad)
    return t


def fit(t: Table, console: Console) -> list[Table]:
    """The table as the console shows it: columns left out (narrow) where even its narrowest
    layout is too wide, the room shared so that no column goes below its longest word. One table,
    never split (a list for the callers that print parts)."""
    return [_set_widths(narrow(t, console), console)]
