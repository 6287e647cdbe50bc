"""The report at a glance (issue 32, item 5; issue 33's views table): a regime map sized to its
labels, distinct series in every figure, chips whose words agree with their verdicts, one palette,
a print layout without mid-word breaks, and the landscape views' numbers beside C4."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from types import SimpleNamespace

import pytest
from matplotlib.colors import to_hex
from typer.testing import CliRunner

import bncli
from bncli.cli import app
from bncli.render import figstyle, palette
from bncli.render.figures import figure_for
from bncli.render.regimes import regime_figure
from bncli.render.report import Verdict
from bncli.render.report_html import CSS, _verdict_css, _verdict_div
from bncli.render.report_text import short_decided
from bncli.render.report_views import barrier, view_rows
from bncli.results import Claim, MetricComparison

GREY = "#555555"  # legend proxies that explain a line style


def _claim(verdict: str, lr: float = 0.1, arm: str = "batchnorm", points: str = "claimed", leaning: str | None = None,
           decided_by: str = "metrics", test: str = "superiority", claim: str = "C1") -> Claim:
    m = MetricComparison("final train loss", "lower", 0.5, 1.0, [0.5] * 3, [1.0] * 3, effect=-0.5, points=points,
                         p_claimed=0.001, p_against=0.9, test=test)
    return Claim(claim, "s", verdict, lr, arm, "plain", [m], "rule", leaning=leaning or verdict,
                 decided_by=decided_by, n_seeds=3, beyond=[3, 3], budgets={"40%": verdict, "100%": verdict})


def _docs(label: str, verdicts: list[str]) -> list[SimpleNamespace]:
    claims = [_claim(v, lr=lr) for v, lr in zip(verdicts, (0.1, 0.5, 2.0), strict=False)]
    return [SimpleNamespace(label=label, result=SimpleNamespace(claims=claims))]


def _texts_inside(fig) -> tuple[int, list[str]]:
    """(texts drawn, those whose extent leaves the figure), measured at the resolution it is saved at."""
    fig.set_dpi(figstyle.DPI)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent"))
             if t.get_visible() and isinstance(t.get_text(), str) and t.get_text().strip()]
    out = []
    for t in texts:
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 0.5 or e.x1 > box.x1 + 0.5 or e.y0 < box.y0 - 0.5 or e.y1 > box.y1 + 0.5:
            out.append(t.get_text())
    return len(texts), out


# ---------------------------------------------------------------- the regime map


def test_regime_map_grows_with_its_labels_and_cuts_none():
    short = regime_figure(_docs("a", ["supported", "inconclusive"]))
    long = regime_figure(_docs("a_rather_long_comparison_name_with_underscores · measure-ics",
                               ["refuted", "exploratory", "supported"]))
    for fig in (short, long):
        n, outside = _texts_inside(fig)
        assert n >= 8 and not outside, outside  # labels, cells, lr ticks, the 4 legend entries, title
    assert long.get_size_inches()[0] > short.get_size_inches()[0]
    legend = [t.get_text() for t in long.legends[0].get_texts()] if long.legends else \
        [t.get_text() for t in long.axes[0].get_legend().get_texts()]
    assert legend == ["✓ supported", "✗ refuted", "? inconclusive", "~ exploratory"]
    ticks = [t.get_text() for t in long.axes[0].get_yticklabels()]
    assert ticks[0].replace("\n", " ") == "a_rather_long_comparison_name_with_underscores · measure-ics · C1 " \
                                          "batchnorm vs plain"


def test_regime_cells_hold_their_text():
    claims = [replace(_claim("exploratory", lr=lr, leaning="supported"), budgets={}) for lr in (0.1, 0.5)]
    fig = regime_figure([SimpleNamespace(label="x", result=SimpleNamespace(claims=claims))])
    fig.set_dpi(figstyle.DPI)
    fig.canvas.draw()
    renderer, ax = fig.canvas.get_renderer(), fig.axes[0]
    cell_px = ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]
    texts = [t for t in ax.texts if "exploratory" in t.get_text()]
    assert len(texts) == 2
    for t in texts:
        assert t.get_window_extent(renderer).width < cell_px, t.get_text()  # no text spills into the next cell
    assert not _texts_inside(fig)[1]


def test_regime_map_colours_are_the_palette():
    fig = regime_figure(_docs("x", ["supported", "refuted", "inconclusive"]))
    faces = [to_hex(p.get_facecolor()).upper() for p in fig.axes[0].patches]
    assert faces[:3] == [palette.verdict_hex(v).upper() for v in ("supported", "refuted", "inconclusive")]
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert [c[0] for c in cells] == ["✓", "✗", "?"]  # the symbol beside the colour


# ---------------------------------------------------------------- one palette, chips that agree


def test_report_colours_are_the_palette():
    assert figstyle.OKABE_ITO is palette.OKABE_ITO
    css = _verdict_css()
    for verdict, (fill, ink, _, _) in palette.VERDICTS.items():
        assert f".v-{verdict.replace(' ', '-')}{{background:{fill};color:{ink}}}" in css
    assert not re.search(r"#4C72B0|#DD8452", CSS + css, re.I)  # the old regime map's blue / orange


def _verdict(c: Claim) -> Verdict:
    doc = SimpleNamespace(label="d · train", result=SimpleNamespace(runs=[SimpleNamespace(arm="plain"),
                                                                         SimpleNamespace(arm="batchnorm")]))
    return Verdict(c, doc, 1, "")


@pytest.mark.parametrize("verdict,points,leaning,decided_by,test", [
    ("supported", "claimed", None, "metrics", "superiority"),
    ("supported", "neither", None, "metrics", "non-inferiority"),
    ("supported", "neither", None, "maths-check", "superiority"),
    ("supported", "neither", None, "divergence", "superiority"),
    ("refuted", "against", None, "metrics", "superiority"),
    ("refuted", "neither", None, "metrics", "superiority"),
    ("inconclusive", "neither", None, "metrics", "superiority"),
    ("exploratory", "neither", "inconclusive", "metrics", "superiority"),
    ("exploratory", "neither", "supported", "metrics", "superiority"),
])
def test_chip_text_agrees_with_its_verdict(verdict, points, leaning, decided_by, test):
    c = _claim(verdict, points=points, leaning=leaning, decided_by=decided_by, test=test)
    text = short_decided(_verdict(c))
    lean = c.leaning if verdict == "exploratory" else verdict
    assert ("neither way" in text) == (lean == "inconclusive"), text
    assert ("no worse" in text) == (lean == "supported" and test == "non-inferiority" and decided_by == "metrics")
    chip = _verdict_div(_verdict(c))
    if decided_by not in ("metrics", "maths-check"):  # an override names itself once, on the chip
        assert f"[by {decided_by}]" in chip and f"by {decided_by}" not in text
    assert f'class="v v-{verdict}"' in chip and f'<span class="vw">{palette.verdict_symbol(verdict)}\u00a0' in chip
    assert "-" not in re.sub(r"<[^>]*>", "", chip.split("<small>")[1])  # numbers never split at a hyphen


def test_print_layout_breaks_no_word():
    media = CSS[CSS.index("@media print"):]
    assert "anywhere" not in CSS and "break-all" not in CSS  # no mid-word breaks, on screen or in print
    assert "table-layout:fixed" not in media  # columns as wide as their longest word
    assert re.search(r"table\.grid \.v \.vw\{white-space:nowrap", media)  # a chip's verdict stays on one line


# ---------------------------------------------------------------- distinct series in every figure


def _series(fig) -> dict[str, tuple[str, str]]:
    """label -> (colour, line style) of every entry of the figure's legends (its own and any
    inside a panel): what a reader matches the curves against."""
    out: dict[str, tuple[str, str]] = {}
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    assert legends
    for leg in legends:
        for h, t in zip(leg.legend_handles, leg.get_texts(), strict=True):
            lab = t.get_text()
            if hasattr(h, "get_linestyle") and hasattr(h, "get_color"):
                style = (to_hex(h.get_color()).upper(), str(h.get_linestyle()))
            else:  # a patch (a filled band)
                style = (to_hex(h.get_facecolor()).upper(), "fill")
            assert out.setdefault(lab, style) == style, lab
    return out


@pytest.mark.parametrize("name,claims", [("train", ["C1"]), ("measure-ics", ["C2", "C3"]),
                                         ("lipschitz", ["C4", "C5"]), ("scale-check", ["C6"]),
                                         ("saturation", ["C7", "C8"])])
def test_every_series_is_told_apart(saved_results, name, claims):
    from bncli.render.figstyle import pyplot

    res = bncli.load(saved_results[name])
    colors = figstyle.arm_colors(figstyle.result_arms(res))
    for claim in claims:
        fig = figure_for(claim)(res, colors=colors, notes=[])
        assert fig is not None, claim
        series = _series(fig)
        styles = list(series.values())
        assert len(set(styles)) == len(styles), (claim, series)  # no two labels drawn alike
        arm_hues = {colors[a] for a in colors}
        for lab, (hue, _) in series.items():  # a layer or unit never wears an arm's colour
            if hue != GREY and not any(lab == a or lab.startswith(f"{a},") for a in colors):
                assert hue not in {h.upper() for h in arm_hues}, (claim, lab, hue)
        if claim in ("C6", "C7"):  # the same arm at two moments: both curves visible where they coincide
            for ax in fig.axes:
                by_hue: dict[str, list] = {}
                for line in ax.get_lines():
                    if len(line.get_xdata()) and to_hex(line.get_color()).upper() != GREY \
                            and line.get_linestyle() != "None":  # error bar caps are lines too
                        by_hue.setdefault(to_hex(line.get_color()).upper(), []).append(line)
                for lines in by_hue.values():
                    marks = [(ln.get_linestyle(), ln.get_marker(), str(ln.get_markerfacecolor())) for ln in lines]
                    assert len(set(marks)) == len(marks), (claim, marks)
        pyplot().close(fig)


# ---------------------------------------------------------------- the landscape views' table


def test_barrier():
    assert barrier([-0.5, 0.0, 0.5, 1.0, 1.5], [9.0, 1.0, 3.0, 2.0, 9.0]) == pytest.approx(1.5)
    assert barrier([0.0, 0.5, 1.0], [2.0, 1.0, 0.0]) == pytest.approx(0.0)  # below the chord: no barrier
    assert math.isnan(barrier([0.5, 1.5], [1.0, 1.0]))  # one sample in [0, 1]: no chord
    ts = [0.5 + (-1.0 + 2.0 * i / 10) for i in range(11)]  # as saved (11 points): t = 0.1 ... 0.9 inside
    # ends interpolated from t = ±0.1 and 0.9/1.1: L(0) = 3, L(1) = 1; the chord at 0.5 is 2, L(0.5) = 3
    assert barrier(ts, [5.0] * 3 + [1.0, 1.5, 3.0, 1.5, 1.0, 1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert barrier(ts, [5.0] * 3 + [1.0, 1.5, 2.0, 1.5, 1.0, 1.0, 1.0, 1.0]) == pytest.approx(0.0)
    assert barrier([0.0, 0.5, 1.0], [1.0, math.inf, 1.0]) == math.inf


def test_views_table_in_the_report_only_with_views(tiny_spec_dict_factory, write_spec, tmp_path):
    spec = tiny_spec_dict_factory(analysis={"lipschitz": {"every": 2, "hessian_trace": True, "hessian_trace_max": 16,
                                                          "surface": {"dims": 1, "points": 5, "interpolate": True}}})
    out, plain = tmp_path / "views", tmp_path / "plain"
    for folder, d in ((out, spec), (plain, tiny_spec_dict_factory(analysis={"lipschitz": {"every": 2}}))):
        result = CliRunner().invoke(app, ["lipschitz", str(write_spec(d, f"{folder.name}.yaml")), "--steps", "4",
                                          "--out", str(folder), "-q"])
        assert result.exit_code == 0, result.output
    res = bncli.load(out)
    head, rows = view_rows(res)
    assert head[:3] == ["η", "arm", "seeds"] and {"tr H", "λ1", "surface range", "rise (sharpness)",
                                                  "barrier θ₀→θ"} <= set(head)
    by_arm = {r[1]: dict(zip(head, r, strict=True)) for r in rows}
    assert set(by_arm) == {"plain", "batchnorm"}
    saved = {r["arm"]: r for r in res.tables["views"]}
    for arm, row in by_arm.items():  # the numbers lipschitz printed, not new ones
        assert float(row["tr H"]) == pytest.approx(saved[arm]["trace_end"], rel=1e-3)
        assert float(row["surface range"]) == pytest.approx(saved[arm]["surface_range"], rel=1e-3)
        assert math.isfinite(float(row["barrier θ₀→θ"]))
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    heading = "Landscape views (evidence beside C4, not judged)"
    assert md.index("## C4") < md.index(heading) < md.index("## C5")
    assert heading in page and "not judged" in page
    assert view_rows(bncli.load(plain)) is None
    assert heading not in (plain / "report.md").read_text() and heading not in (plain / "report.html").read_text()
