"""The one figure style of bncli's plots/ and reports, sized for print: a page (two columns, 7 in)
or one column (3.3 in) wide, tick labels 8 pt at that size, Okabe–Ito colours, PNG at 200 dpi, SVG
or PDF; and the series helpers every figure shares: NaN-safe means over seeds, log axes only when
they can hold the data."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bncli.render.palette import OKABE_ITO
from bncli.results import CommandResult, RunRecord

# Okabe & Ito 2008 (render/palette.py, the one palette of terminal, report and figures):
# distinguishable with every common colour-vision deficiency. Yellow last: it is faint on white,
# so only the 8th arm of a report gets it.
UNIT_COLORS = [OKABE_ITO[i] for i in (4, 5, 3, 6)]  # tracked units inside one panel
# layers inside one panel (arms differ by line style there): distinct hues, not shades of one
LAYER_COLORS = [OKABE_ITO[i] for i in (4, 1, 3, 6, 5, 2)]
ARM_STYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "*"]  # with colours: a series stays told apart in grey
DPI = 200  # PNG resolution: print quality at the figure's own size
FORMATS = ("png", "svg", "pdf")
WIDTHS = {"page": 7.0, "column": 3.3}  # inches: two columns of a paper, or one

STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "font.family": "DejaVu Sans",  # ships with matplotlib: ‖, Δ, η′, ✕ render everywhere
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.titley": 1.0,  # a fixed title position: auto-placing it measures every tick label again
    "axes.titlepad": 4.0,
    "axes.labelsize": 8.5,
    "figure.titlesize": 9.5,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "svg.fonttype": "none",  # text stays text in SVG (searchable, editable)
    "pdf.fonttype": 42,  # TrueType in PDF: what journals ask for
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.3,
    "lines.markersize": 3.5,
    "axes.formatter.limits": (-3, 4),
    "axes.formatter.useoffset": False,  # "1e−3+1" above an axis reads as noise: show 1.0005
}


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def style() -> Iterator[Any]:
    """pyplot with the report style applied (restored afterwards)."""
    plt = pyplot()
    from cycler import cycler

    with plt.rc_context({**STYLE, "axes.prop_cycle": cycler(color=OKABE_ITO)}):
        yield plt


def figure_bytes(fig: Any, fmt: str = "png", close: bool = True) -> bytes:
    """The figure as PNG (200 dpi), SVG or PDF bytes; the figure is closed unless `close` is
    False. No bbox='tight' (it draws the figure twice): finish() already placed everything.
    No dates in the files: the same result draws the same bytes."""
    plt = pyplot()
    buf = io.BytesIO()
    meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt, {})
    try:
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=meta)
    finally:
        if close:
            plt.close(fig)
    return buf.getvalue()


def png_bytes(fig: Any) -> bytes:
    return figure_bytes(fig, "png")


_WIDTH = [WIDTHS["page"]]  # the width figures are laid out for (set by sized())


@contextmanager
def sized(size: str = "page") -> Iterator[None]:
    """Lay figures out for a page (7 in) or one column (3.3 in) while inside."""
    old = _WIDTH[0]
    _WIDTH[0] = WIDTHS.get(size, WIDTHS["page"])
    try:
        yield
    finally:
        _WIDTH[0] = old


def layer_style(k: int, n: int) -> str:
    """A layer's colour (k of n shown)."""
    return LAYER_COLORS[k % len(LAYER_COLORS)] if n else LAYER_COLORS[0]


def series_colors(avoid: Iterable[str] = (), base: Sequence[str] = LAYER_COLORS) -> list[str]:
    """The colours left for series inside a figure (layers, units) once the `avoid` colours (the
    report's arm colours, which share its legends) are taken: `base` first, then the rest of the
    palette, yellow (faint) last; at most that many series are drawn, so no two look alike."""
    taken = {c.upper() for c in avoid}
    order = [*base, *OKABE_ITO[1:7], OKABE_ITO[7], OKABE_ITO[0]]
    free = [c for c in dict.fromkeys(order) if c.upper() not in taken]
    return free or list(base)


def arm_colors(arms: Iterable[str]) -> dict[str, str]:
    """One colour per arm, in first-seen order (pass every arm of a report to keep colours
    consistent across its figures)."""
    return {a: OKABE_ITO[i % len(OKABE_ITO)] for i, a in enumerate(dict.fromkeys(arms))}


def result_arms(result: CommandResult) -> list[str]:
    """Arm names in the spec's order, then any others the runs hold."""
    names = [a.get("name") for a in result.spec.get("arms", []) if isinstance(a, dict)]
    return list(dict.fromkeys([n for n in names if n] + [r.arm for r in result.runs]))


def result_lrs(result: CommandResult) -> list[float]:
    """Learning rates the runs cover, in the spec's order."""
    lrs = result.spec.get("train", {}).get("lr", [])
    lrs = lrs if isinstance(lrs, list) else [lrs]
    ran = {r.lr for r in result.runs}
    return [lr for lr in dict.fromkeys([*lrs, *sorted(ran)]) if lr in ran]


def runs_of(result: CommandResult, arm: str, lr: float, probe: str | None = None) -> list[RunRecord]:
    """The seeds of one arm at one learning rate (only those holding `probe`, when given)."""
    return [r for r in result.runs if r.arm == arm and r.lr == lr and (probe is None or r.probes.get(probe))]


def num(v: Any) -> float:
    """A finite float, or NaN for None / non-finite / non-numbers."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


Series = tuple[list[float], list[float], list[float]]


def mean_std_over(series: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> Series:
    """[(steps, values)] of several seeds -> (steps, mean, std) over the seeds' finite values at
    each step (NaN where no seed has one; std 0 with one seed)."""
    by: dict[float, list[float]] = {}
    for steps, values in series:
        for s, v in zip(steps, values, strict=False):
            f = num(v)
            by.setdefault(float(s), [])
            if not math.isnan(f):
                by[float(s)].append(f)
    xs = sorted(by)
    mean, std = [], []
    for x in xs:
        vals = by[x]
        if not vals:
            mean.append(math.nan)
            std.append(math.nan)
            continue
        m = sum(vals) / len(vals)
        mean.append(m)
        std.append((sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0)
    return xs, mean, std


def positive(values: Iterable[float]) -> list[float]:
    return [v for v in values if not math.isnan(v) and v > 0]


def has_finite(values: Iterable[float]) -> bool:
    return any(not math.isnan(num(v)) for v in values)


def log_if_possible(ax: Any, values: Iterable[float], spread: float = 0.0) -> bool:
    """Log y scale when every finite value is > 0 (and, if `spread` > 0, they span more than that
    factor). A log axis with nothing positive on it would fail or warn, so it stays linear."""
    vals = [num(v) for v in values]
    fin = [v for v in vals if not math.isnan(v)]
    if not fin or any(v <= 0 for v in fin):
        return False
    if spread and max(fin) / min(fin) <= spread:
        return False
    ax.set_yscale("log")
    return True


def band(ax: Any, xs: Sequence[float], mean: Sequence[float], std: Sequence[float], color: str,
         label: str, log: bool = False, **kw: Any) -> None:
    """A mean line with a ±1 std band (on a log axis the band is clipped above 0); with one or two
    finite points, markers too (a lone point draws no line)."""
    if sum(not math.isnan(num(v)) for v in mean) <= 2:
        kw.setdefault("marker", "o")
    ax.plot(xs, mean, color=color, label=label, **kw)
    if any(s and not math.isnan(s) for s in std):
        lo = [m - s for m, s in zip(mean, std, strict=True)]
        hi = [m + s for m, s in zip(mean, std, strict=True)]
        if log:
            lo = [v if v > 0 else m * 0.5 for v, m in zip(lo, mean, strict=True)]
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, lw=0)


def end_label(ax: Any, xs: Sequence[float], ys: Sequence[float], text: str, color: str) -> None:
    """A small label at a line's last finite point (which layer a line is, without a legend entry)."""
    pts = [(x, y) for x, y in zip(xs, ys, strict=False) if not math.isnan(num(y))]
    if pts:
        ax.annotate(text, pts[-1], xytext=(2, 0), textcoords="offset points", fontsize=7, color=color,
                    va="center")


def no_data(ax: Any, text: str = "no finite values") -> None:
    """Say so in the panel instead of drawing an empty (or crashing) axis."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8,
            color="#555555", wrap=True)
    ax.set_yticks([])


def spread_pick(items: Sequence[str], k: int) -> list[str]:
    """k items spread evenly (first and last kept)."""
    from bncli.stats import spread_indices

    return [items[i] for i in spread_indices(len(items), k)]


def legend(ax: Any, **kw: Any) -> None:
    """A legend only when something is labelled; a fixed corner ('best' searches the data: slow)."""
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(loc=kw.pop("loc", "upper right"), **kw)


# Fixed margins in inches. matplotlib's constrained layout would find them itself, but it costs
# about 60% of a figure's time, and a report draws dozens of figures.
LEFT, RIGHT, WGAP, HGAP, TOP, BOTTOM = 0.72, 0.15, 0.72, 0.62, 0.32, 0.5
TITLE_LINE, LEGEND_ROW, MIN_PANEL = 0.2, 0.21, 1.5


def fit_columns() -> int:
    """How many panels of at least MIN_PANEL inches fit side by side in the current width."""
    return max(1, int((_WIDTH[0] - LEFT - RIGHT + WGAP) // (MIN_PANEL + WGAP)))


def new_figure(plt: Any, rows: int, cols: int, w: float, h: float, grid: bool = False, **kw: Any) -> tuple[Any, Any]:
    """A figure of rows x cols panels of w x h inches, at most the current width (sized()):
    (fig, axes[rows][cols]) or, with grid=True, (fig, gridspec). When the columns don't fit, the
    panels flow into as many columns as fit, in reading order (axes[i][j] still names the
    panel). finish() sizes and lays it out."""
    import numpy as np

    avail = _WIDTH[0] - LEFT - RIGHT
    if not grid and cols > fit_columns():
        n, c2 = rows * cols, fit_columns()
        r2 = -(-n // c2)
        w2 = min(w, (avail - (c2 - 1) * WGAP) / c2)
        fig = plt.figure(figsize=(c2 * w2, r2 * h))
        fig._bncli_grid = (r2, c2, w2, h)
        flat = list(fig.subplots(r2, c2, squeeze=False).ravel())
        for ax in flat[n:]:
            fig.delaxes(ax)
        axes = np.empty((rows, cols), dtype=object)
        for i in range(n):
            axes[i // cols][i % cols] = flat[i]
        return fig, axes
    w = min(w, (avail - (cols - 1) * WGAP) / cols)
    fig = plt.figure(figsize=(cols * w, rows * h))
    fig._bncli_grid = (rows, cols, w, h)
    if grid:
        return fig, fig.add_gridspec(rows, cols)
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def _tick_label(x: float, _pos: Any = None) -> str:
    return f"{x:g}".replace("-", "−")


def _lean_ticks(ax: Any, panel_w: float = 3.0) -> None:
    """Few ticks, no minor ticks, plain labels ('0.01', not mathtext '$10^{-2}$'). Tick labels are
    most of what matplotlib draws: this halves a figure's time and reads the same."""
    from matplotlib.ticker import AutoLocator, FuncFormatter, LogLocator, MaxNLocator, NullLocator

    for axis, scale, lim in ((ax.xaxis, ax.get_xscale(), ax.get_xlim), (ax.yaxis, ax.get_yscale(), ax.get_ylim)):
        if scale == "log":
            lo, hi = sorted(lim())
            span = hi / lo if lo > 0 else math.inf  # short spans get ticks inside decades too
            subs = tuple(range(1, 10)) if span < 3 else (1.0, 2.0, 5.0) if span < 30 else (1.0,)
            n = 8 if axis is ax.yaxis else max(3, min(8, int(panel_w * 2.4)))  # x labels must not touch
            axis.set_major_locator(LogLocator(subs=subs, numticks=n))
            axis.set_major_formatter(FuncFormatter(_tick_label))
            axis.set_minor_locator(NullLocator())
        elif isinstance(axis.get_major_locator(), AutoLocator):  # not where a panel set its own ticks
            axis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))


class QuantityGrid:
    """Panels for several quantities x learning rates: a row per quantity and a column per rate,
    or, with one rate, the quantities side by side (a tall single column wastes the page)."""

    def __init__(self, plt: Any, n_quantities: int, n_lrs: int, w: float, h: float) -> None:
        self.flat = n_lrs == 1
        self.n = n_quantities
        if self.flat:
            self.fig, self.axes = new_figure(plt, 1, n_quantities, w, h * 1.2)
        else:
            self.fig, self.axes = new_figure(plt, n_quantities, n_lrs, w, h, sharex="col")

    def ax(self, quantity: int, lr_index: int) -> Any:
        return self.axes[0][quantity] if self.flat else self.axes[quantity][lr_index]

    def top(self, quantity: int) -> bool:
        return self.flat or quantity == 0

    def bottom(self, quantity: int) -> bool:
        return self.flat or quantity == self.n - 1


def finish(fig: Any, title: str, legend_skip: Iterable[Any] = ()) -> None:
    """Title on top (wrapped), one legend for the whole figure under it (outside every panel, so it
    never hides data: each distinct label of every axis but those in `legend_skip`), and margins."""
    import textwrap

    rows, cols, w, h = fig._bncli_grid
    width = LEFT + RIGHT + cols * w + (cols - 1) * WGAP
    lines = textwrap.wrap(title, max(30, int(width * 12))) if title else []
    seen: dict[str, Any] = {}
    skip_ids = {id(a) for a in legend_skip}
    for ax in fig.axes:
        if id(ax) not in skip_ids:
            for handle, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if not lab.startswith("_"):
                    seen.setdefault(lab, handle)
    ncol = legend_rows = 0
    if seen:
        entry = 0.55 + 0.066 * max(len(lab) for lab in seen)
        ncol = max(1, min(len(seen), int((width - 0.3) // entry)))
        legend_rows = -(-len(seen) // ncol)
    top = TOP + TITLE_LINE * len(lines)
    bottom = BOTTOM + LEGEND_ROW * legend_rows
    height = top + bottom + rows * h + (rows - 1) * HGAP
    for ax in fig.axes:
        _lean_ticks(ax, w)
    fig.set_size_inches(width, height)
    fig.subplots_adjust(left=LEFT / width, right=1 - RIGHT / width, bottom=bottom / height,
                        top=1 - top / height, wspace=WGAP / w, hspace=HGAP / h)
    if lines:
        fig.suptitle("\n".join(lines), y=1 - 0.08 / height, va="top", fontsize=9.5)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="lower center", bbox_to_anchor=(0.5, 0.04 / height),
                   ncol=ncol, fontsize=8)


def lr_label(lr: float) -> str:
    return f"η={lr:g}"


def arm_label(arm: str, lr: float, lrs: Sequence[float]) -> str:
    """A legend entry: the arm, and the learning rate unless each panel's title already names it
    (several learning rates, one panel per rate)."""
    return f"{arm}, {lr_label(lr)}" if len(lrs) <= 1 else arm


