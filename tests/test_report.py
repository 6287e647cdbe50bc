"""`bncli report`: report.md and a self-contained report.html from the saved results of every
subcommand and of a batch; figures (axes, PNGs); schema errors; non-finite series; a real browser."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import struct
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bncli.cli import app
from bncli.render import figstyle, figures, figures_more
from bncli.render.report import deciding_metric
from bncli.render.report_write import write_report
from bncli.results import Claim, CommandResult, MetricComparison

runner = CliRunner()

TINY = {
    "name": "tiny",
    "seed": 0,
    "device": "cpu",
    "threads": 1,
    "data": {"source": "synthetic", "n_samples": 160, "n_features": 6, "n_classes": 3},
    "model": {"kind": "mlp", "hidden": [12, 10], "activation": "relu"},
    "arms": ["plain", "batchnorm"],
    "train": {"lr": [0.1], "batch_size": 32, "steps": 12, "eval_every": 6},
    "analysis": {"ics": {"every": 4}, "lipschitz": {"every": 6}, "scale": {"every": 6},
                 "saturation": {"every": 6}},
}
COMMANDS = {  # subcommand -> spec changes
    "train": {"train": {**TINY["train"], "lr": [0.1, 0.5]}, "seeds": 2},
    "measure-ics": {},
    "lipschitz": {},
    "scale-check": {},
    "saturation": {"arms": ["plain", "batchnorm", "batchnorm_noaffine"],
                   "model": {**TINY["model"], "activation": "sigmoid"}},
}


def _run(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A result folder per subcommand and a batch folder, made once through the real CLI. One
    subcommand writes its folder with --out; the others save their --json document as summary.json
    (the same document, without drawing the subcommands' own plots: that is most of their time)."""
    root = tmp_path_factory.mktemp("report")
    out: dict[str, Path] = {}
    for cmd, change in COMMANDS.items():
        spec = root / f"{cmd}.yaml"
        spec.write_text(yaml.safe_dump({**TINY, **change}, sort_keys=False))
        out[cmd] = root / cmd
        if cmd == "saturation":
            _run([cmd, str(spec), "--out", str(out[cmd]), "--quiet"])
            continue
        result = runner.invoke(app, [cmd, str(spec), "--json", "--quiet"])
        assert result.exit_code == 0, result.output
        out[cmd].mkdir()
        (out[cmd] / "summary.json").write_text(result.stdout)
    batch = {"comparisons": [{"name": "tiny_ics", "spec": TINY, "command": ["train", "measure-ics"],
                              "expect": [{"not_diverged": "batchnorm"}]}]}
    (root / "b.yaml").write_text(yaml.safe_dump(batch, sort_keys=False))
    out["batch"] = root / "batch"
    result = runner.invoke(app, ["batch", str(root / "b.yaml"), "--out", str(out["batch"]), "--jobs", "1",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report*"))
    return dst


class _Page(HTMLParser):
    """Collects images and links, and checks that every non-void tag is closed in order."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def check_report(folder: Path) -> tuple[str, str]:
    """report.md links PNGs that exist; report.html parses, is closed properly, loads nothing from
    the network and embeds exactly those figures as PNG data URIs."""
    md = (folder / "report.md").read_text(encoding="utf-8")
    page = (folder / "report.html").read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+\.png)\)", md)
    assert linked, "report.md shows no figure"
    for rel in linked:
        assert (folder / rel).stat().st_size > 1000
    assert sorted(p.name for p in (folder / "report_files").glob("*.png")) == sorted(Path(x).name for x in linked)
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    assert not [u for u in parser.links if re.match(r"(https?:)?//", u)], "report.html loads from the network"
    assert len(parser.images) == len(linked)
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        w, h = _png_size(base64.b64decode(src.split(",", 1)[1]))
        assert w > 100 and h > 100
    assert "@media print" in page and "Provenance" in page and "Verdicts" in page
    return md, page


@pytest.mark.parametrize("command", list(COMMANDS))
def test_report_of_every_subcommand(folders, command):
    result = runner.invoke(app, ["report", str(folders[command])])
    assert result.exit_code == 0, result.output
    md, page = check_report(folders[command])
    doc = json.loads((folders[command] / "summary.json").read_text())
    for c in doc["claims"]:  # every verdict is in the grid and in its claim's section
        assert f"## {c['claim']}" in md and c["verdict"] in md
    assert "## Provenance" in md and "```yaml" in md and "name: tiny" in md
    assert "command line" in md


def test_report_of_a_batch(folders):
    result = runner.invoke(app, ["report", str(folders["batch"])])
    assert result.exit_code == 0, result.output
    md, page = check_report(folders["batch"])
    assert "## Expectations" in md and "| ✓ | tiny_ics · train | batchnorm does not diverge" in md
    assert "tiny_ics · measure-ics" in md and "C2 · tiny_ics · measure-ics" in md
    assert 'class="ok"' in page


def test_batch_with_a_missing_comparison_and_a_command_line(folders, tmp_path):
    """A comparison folder that went missing is listed, not fatal; a stored command line is shown."""
    folder = _copy(folders["batch"], tmp_path / "b")
    doc = json.loads((folder / "batch.json").read_text())
    gone = doc["comparisons"][1]["path"]
    (folder / gone / "summary.json").unlink()
    doc["command_line"] = "bncli batch b.yaml --out runs/b"
    (folder / "batch.json").write_text(json.dumps(doc))
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    md = (folder / "report.md").read_text(encoding="utf-8")
    assert f"{gone}/summary.json is missing" in md
    assert "bncli batch b.yaml --out runs/b" in md and "bncli batch b.yaml --out runs/b" in (
        folder / "report.html").read_text(encoding="utf-8")


def test_formats_and_open(folders, tmp_path, monkeypatch):
    md_only = _copy(folders["train"], tmp_path / "md")
    assert runner.invoke(app, ["report", str(md_only), "--format", "md"]).exit_code == 0
    assert (md_only / "report.md").exists() and not (md_only / "report.html").exists()
    html_only = _copy(folders["train"], tmp_path / "html")
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    result = runner.invoke(app, ["report", str(html_only), "--format", "html", "--open"])
    assert result.exit_code == 0, result.output
    assert (html_only / "report.html").exists() and not (html_only / "report_files").exists()
    assert opened == [(html_only / "report.html").resolve().as_uri()]


@pytest.mark.parametrize("name", ["summary.json", "batch.json"])
def test_another_schema_version_is_one_line_exit_2(folders, tmp_path, name):
    src = folders["batch" if name == "batch.json" else "train"]
    folder = _copy(src, tmp_path / "old")
    doc = json.loads((folder / name).read_text())
    doc["schema_version"] = 1
    (folder / name).write_text(json.dumps(doc))
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "schema_version 1" in lines[0], result.stderr
    assert not (folder / "report.html").exists()


@pytest.mark.parametrize("make", ["missing", "empty", "not json"])
def test_no_results_is_one_line_exit_2(tmp_path, make):
    folder = tmp_path / "d"
    if make != "missing":
        folder.mkdir()
    if make == "not json":
        (folder / "summary.json").write_text("{not json")
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


# ---------------------------------------------------------------- figures


def _load(folder: Path) -> CommandResult:
    return CommandResult.from_json(json.loads((folder / "summary.json").read_text()))


@pytest.mark.parametrize("command,claim,n_axes", [
    ("train", "C1", 4),  # loss and accuracy x 2 learning rates
    ("measure-ics", "C2", 5),  # 2 arms x 2 layers of percentile bands + the W1 panel
    ("measure-ics", "C3", 2),  # ‖G − G′‖ and cos for layer 2 (layer 1 has no earlier layers)
    ("lipschitz", "C4", 3),  # loss range, predictiveness, effective β (one rate: side by side)
    ("lipschitz", "C5", 2),  # Jacobian and backward errors
    ("scale-check", "C6", 3),  # output change vs α, ‖W‖ over steps per arm (plain, batchnorm)
    ("saturation", "C7", 2),  # saturated fraction by layer, gradient norm by depth
    ("saturation", "C8", 2),  # γ and β
])
def test_figure_axes_and_png(folders, command, claim, n_axes):
    result = _load(folders[command])
    notes: list[str] = []
    fig = figures.figure_for(claim)(result, notes=notes)
    assert fig is not None and len(fig.axes) == n_axes
    assert fig.legends, "one legend for the whole figure"
    w, h = _png_size(figstyle.png_bytes(fig))
    assert w > 300 and h > 200
    assert notes == []


def test_c9_figure_from_ics_and_landscape(folders):
    points = figures_more.c9_points([_load(folders["measure-ics"]), _load(folders["lipschitz"])])
    assert {p["arm"] for p in points} == {"plain", "batchnorm"}
    fig = figures_more.c9_figure(points)
    assert len(fig.axes) == 1
    assert _png_size(figstyle.png_bytes(fig))[0] > 200


def test_non_finite_series_are_skipped_with_a_note(folders, tmp_path):
    """Every arm's loss non-finite from the start: no crash on the log axis, a note instead."""
    result = _load(folders["train"])
    nan = [math.nan] * len(result.runs[0].steps)
    broken = replace(result, runs=[replace(r, train_loss=nan, test_loss=nan, test_acc=[None] * len(nan),
                                           diverged_at=0) for r in result.runs])
    notes: list[str] = []
    fig = figures.c1_figure(broken, notes=notes)
    assert len(fig.axes) == 4 and any("not finite" in n for n in notes)
    figstyle.png_bytes(fig)
    folder = tmp_path / "nan"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(broken.to_json()))
    written = write_report(folder)
    assert folder / "report.html" in written
    assert "not finite" in (folder / "report.md").read_text(encoding="utf-8")


def test_figures_drawn_in_workers_match_serial(folders, tmp_path):
    a, b = _copy(folders["batch"], tmp_path / "a"), _copy(folders["batch"], tmp_path / "b")
    write_report(a, ("md",), jobs=1)
    write_report(b, ("md",), jobs=2)
    pngs = sorted(p.name for p in (a / "report_files").glob("*.png"))
    assert pngs == sorted(p.name for p in (b / "report_files").glob("*.png"))
    for name in pngs:
        assert (a / "report_files" / name).read_bytes() == (b / "report_files" / name).read_bytes()


def test_deciding_number():
    def m(name, points, rel, p_claimed=None, p_against=None):
        return MetricComparison(name, "lower", 1.0, 1.0, [1.0], [1.0], effect=rel, points=points,
                                p_claimed=p_claimed, p_against=p_against)

    def claim(verdict, *ms):
        return Claim("C4", "s", verdict, 0.1, "batchnorm", "plain", list(ms), "rule")

    # supported: the claimed metric closest to the margin is the binding one
    assert deciding_metric(claim("supported", m("a", "claimed", -0.9), m("b", "claimed", -0.2))).name == "b"
    # inconclusive, mostly claimed: the metric pointing against broke it
    assert deciding_metric(claim("inconclusive", m("a", "claimed", -0.9), m("b", "claimed", -0.5),
                                 m("c", "against", 0.3))).name == "c"
    # inconclusive, within the margin
    assert deciding_metric(claim("inconclusive", m("a", "neither", 0.01))).name == "a"
    assert deciding_metric(claim("refuted", m("a", "against", 2.0), m("b", "against", 0.4))).name == "b"
    # the engine's tests: the metric whose p decided the side (intersection-union: the largest)
    assert deciding_metric(claim("supported", m("a", "claimed", -0.9, 0.001, 0.9),
                                 m("b", "claimed", -0.2, 0.004, 0.8))).name == "b"
    assert deciding_metric(claim("refuted", m("a", "against", 2.0, 0.9, 0.003),
                                 m("b", "against", 0.4, 0.8, 0.001))).name == "a"


# ---------------------------------------------------------------- a real browser


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_report_renders_in_headless_chromium(folders, tmp_path):
    """report.html in a real browser (offline, file://): the page renders, with the verdict colours."""
    from PIL import Image

    folder = _copy(folders["batch"], tmp_path / "b")
    write_report(folder, ("html",))
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1280,2400", (folder / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 10_000
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2400)
    colours = {(0x00, 0x72, 0xB2), (0xD5, 0x5E, 0x00), (0xF0, 0xE4, 0x42)}  # supported / refuted / inconclusive
    pixels = img.getcolors(maxcolors=1 << 20) or []
    assert sum(n for n, c in pixels if c in colours) > 200, "no verdict cell was painted"
    assert len(pixels) > 200, "a blank page"
