"""Figures people can put in a paper: PNG at 200 dpi, valid SVG and PDF, a page (7 in) or a column
(3.3 in) wide, tick labels >= 8 pt, the verdict in the caption and not in the title."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
import zlib

import pytest

import bncli
from bncli.render import figstyle, figures
from bncli.render.files import write_plots


def png_info(data: bytes) -> tuple[int, int, float]:
    """(width px, height px, dpi) from the IHDR and pHYs chunks (every chunk's CRC checked)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, dpi, size = 8, 0.0, (0, 0)
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        if kind == b"pHYs":
            ppm_x, _, unit = struct.unpack(">IIB", body)
            assert unit == 1  # per metre
            dpi = round(ppm_x * 0.0254, 1)  # pixels per metre, rounded by the writer
        pos += 12 + n
    return size[0], size[1], dpi


def check_pdf(data: bytes) -> None:
    """A PDF: header, trailer, and startxref pointing at the cross-reference table."""
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    offset = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data).group(1))
    assert data[offset:offset + 4] == b"xref"
    assert re.search(rb"/Type\s*/Page\b", data)


def test_plots_in_each_format(saved_results, tmp_path):
    res = bncli.load(saved_results["measure-ics"])
    for fmt in ("png", "svg", "pdf"):
        files = [p for p in write_plots(res, tmp_path / fmt, fmt) if p.suffix == f".{fmt}"]
        assert {p.stem for p in files} == {"distribution_shift", "gradient_ics"}
        for p in files:
            data = p.read_bytes()
            if fmt == "png":
                w, _, dpi = png_info(data)
                assert dpi >= 200 and w / dpi == pytest.approx(7.0, abs=0.02)
            elif fmt == "svg":
                root = ET.fromstring(data)
                assert root.tag.endswith("svg") and root.get("width").endswith("pt")
                assert float(root.get("width")[:-2]) == pytest.approx(7.0 * 72, abs=2)
            else:
                check_pdf(data)
    captions = (tmp_path / "png" / "captions.md").read_text()
    assert "Verdict:" in captions and res.claims[0].verdict in captions


def test_files_written_by_the_commands(saved_results):
    """train wrote pdf (plots and the report's files), measure-ics svg, saturation png one column wide."""
    train = saved_results["train"]
    check_pdf((train / "plots" / "training.pdf").read_bytes())
    pdfs = list((train / "report_files").glob("*.pdf"))
    assert pdfs and all(check_pdf(p.read_bytes()) is None for p in pdfs)
    md = (train / "report.md").read_text()
    assert f"(report_files/{pdfs[0].name}) (PDF)" in md
    html = (train / "report.html").read_text()
    assert "data:image/png;base64," in html and 'style="width:7.00in"' in html
    ET.fromstring((saved_results["measure-ics"] / "plots" / "gradient_ics.svg").read_bytes())
    for p in (saved_results["saturation"] / "plots").glob("*.png"):
        w, _, dpi = png_info(p.read_bytes())
        assert dpi >= 200 and w / dpi == pytest.approx(3.3, abs=0.02)


@pytest.mark.parametrize("size,width", [("page", 7.0), ("column", 3.3)])
@pytest.mark.parametrize("name,claim", [("train", "C1"), ("measure-ics", "C2"), ("measure-ics", "C3"),
                                        ("lipschitz", "C4"), ("scale-check", "C6"), ("saturation", "C7"),
                                        ("saturation", "C8")])
def test_print_sizes_fonts_and_titles(saved_results, name, claim, size, width):
    res = bncli.load(saved_results[name])
    with figstyle.sized(size):
        fig = figures.figure_for(claim)(res)
    try:
        assert fig.get_size_inches()[0] <= width + 1e-6
        fig.canvas.draw()
        for ax in fig.axes:
            for label in ax.get_xticklabels() + ax.get_yticklabels():
                if label.get_text():
                    assert label.get_fontsize() >= 8
        title = fig._suptitle.get_text() if fig._suptitle else ""
        assert not any(v in title for v in ("supported", "refuted", "inconclusive", "no verdict"))
    finally:
        figstyle.pyplot().close(fig)


def test_layers_get_distinct_colours(saved_results):
    """C8: three layers of one arm in three colours (not shades of the arm's)."""
    res = bncli.load(saved_results["saturation"])
    fig = figures.figure_for("C8")(res)
    try:
        ax = fig.axes[0]
        colours = {ln.get_color() for ln in ax.get_lines() if ln.get_label() in ("layer1", "layer2", "layer3")}
        assert len(colours) == 3
    finally:
        figstyle.pyplot().close(fig)
