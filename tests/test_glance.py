"""Issue 32, output at a glance: the default output of an analysis command is short and fits the
terminal (one row per claim, no split tables), each number on a claim row is the deciding
metric's, --detail has every metric, a result's repr is short, claims_frame's columns, and
--json is indented only for a person at a terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from bncli.claim_text import num
from bncli.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def _run(args, columns, **kw):
    res = runner.invoke(app, [*args, "--quiet"], env={"COLUMNS": str(columns)}, **kw)
    assert res.exit_code == 0, res.output
    return res.stdout


def _deciding(c):
    """The metric a verdict rests on, worked out here from the engine's rule (SCIENCE.md:
    intersection-union: the largest p of the side that decided)."""
    if c["verdict"] == "refuted" or (c["verdict"] == "exploratory" and c["leaning"] == "refuted"):
        return max(c["metrics"], key=lambda m: m["p_against"])
    return max(c["metrics"], key=lambda m: m["p_claimed"])


@pytest.fixture(scope="module")
def train_out(tmp_path_factory):
    """`bncli train` on a tiny spec (3 seeds, 2 lrs): its stdout at 100 columns and its --out."""
    import yaml
    from conftest import tiny_spec_dict

    tmp = tmp_path_factory.mktemp("glance")
    p = tmp / "spec.yaml"
    p.write_text(yaml.safe_dump(tiny_spec_dict(seeds=3, threads=1, train={"lr": [0.1, 0.3], "steps": 20,
                                                                          "eval_every": 10})))
    out = tmp / "out"
    stdout = _run(["train", str(p), "--out", str(out), "--no-report"], 100)
    return p, stdout, out


def test_default_output_is_short_and_fits_100_columns(train_out):
    _, stdout, _ = train_out
    lines = stdout.splitlines()
    assert len(lines) <= 30, stdout
    assert max(cell_len(ln.rstrip()) for ln in lines) <= 100
    # one row per claim x lr x arm; the metric-by-metric evidence is not there by default
    assert len([ln for ln in lines if ln.startswith("C1 ")]) == 2, stdout
    assert "Evidence" not in stdout and "(continued" not in stdout
    # the legend is at most two lines and names what the numbers are
    legend = [ln for ln in lines if ln.startswith("effect:")]
    assert legend, stdout
    i = lines.index(legend[0])
    assert len(lines[i:]) <= 2, lines[i:]


@pytest.mark.parametrize("columns", [100, 80, 60])
def test_no_table_splits_and_no_line_is_wider_than_the_terminal(train_out, columns):
    p, _, _ = train_out
    stdout = _run(["train", str(p)], columns)
    lines = stdout.splitlines()
    assert max(cell_len(ln.rstrip()) for ln in lines) <= columns, stdout
    assert "(continued" not in stdout
    # every claim row is whole: its claim id, lr and verdict on one line
    rows = [ln for ln in lines if ln.startswith("C1 ")]
    assert len(rows) == 2, stdout
    assert all(re.search(r"(supported|refuted|inconclusive|exploratory)", ln) for ln in rows), rows
    if columns < 100:  # a column left out is said, never silently
        assert "not shown at" in stdout or all("/3" in ln for ln in rows)


def test_claim_row_numbers_are_the_deciding_metrics(train_out):
    from bncli.render.claim_row import effect_text
    from bncli.results import MetricComparison

    _, stdout, out = train_out
    doc = json.loads((out / "summary.json").read_text())
    rows = [ln for ln in stdout.splitlines() if ln.startswith("C1 ")]
    assert len(rows) == len(doc["claims"])
    for c, row in zip(doc["claims"], rows, strict=True):
        m = _deciding(c)
        cells = row.split()
        assert num(c["lr"]) == cells[1]
        assert effect_text(MetricComparison.from_json(m)) in cells, (row, m)
        assert f"{m['beyond'][0]}/{m['beyond'][1]}" in cells, row
        assert cells[-1] == (num(c["p_adj"], 2) if c["p_adj"] is not None else "-"), row
        # the deciding metric is named on the row (its short name)
        assert m["name"].split(" (")[0].split()[0] in row


def test_detail_shows_every_metric_and_the_notes(train_out):
    p, stdout, out = train_out
    detail = _run(["train", str(p), "--detail"], 100)
    doc = json.loads((out / "summary.json").read_text())
    names = {m["name"] for c in doc["claims"] for m in c["metrics"]}
    assert "Evidence" in detail
    flat = " ".join(detail.split())
    for name in names:
        assert name in flat, name
    assert any(n not in " ".join(stdout.split()) for n in names)  # by default only the deciding one
    assert "paired seed(s)" in detail  # each claim's note line
    assert max(cell_len(ln.rstrip()) for ln in detail.splitlines()) <= 100
    assert not set(detail) & {"┃", "━", "│", "┏"}  # one style: no heavy boxes


def test_narrow_leaves_columns_out_in_order_and_keeps_rows_whole():
    from rich.console import Console

    from bncli.render.compact import table
    from bncli.render.fit import drop_order, fit

    t = table("t")
    for h in ("claim", "lr", "aaaa", "bbbb", "cccc"):
        t.add_column(h, no_wrap=True)
    for i in range(3):
        t.add_row(f"C{i}", "0.1", "x" * 20, "y" * 20, "z" * 20)
    drop_order(t, "bbbb")
    console = Console(width=60, file=open(os.devnull, "w"))  # noqa: SIM115
    [part] = fit(t, console)
    assert [str(c.header) for c in part.columns] == ["claim", "lr", "aaaa", "cccc"]
    assert len(part.rows) == 3 and "bbbb" in str(part.caption)
    console = Console(width=40, file=open(os.devnull, "w"))  # noqa: SIM115
    [part] = fit(t, console)
    assert [str(c.header) for c in part.columns] == ["claim", "lr", "aaaa"]  # then from the right
    console = Console(width=200, file=open(os.devnull, "w"))  # noqa: SIM115
    assert fit(t, console)[0] is t


def test_wrapped_lines_matches_rich():
    from rich.console import Console
    from rich.text import Text

    from bncli.render.fit import _wrapped_lines

    console = Console(width=200, file=open(os.devnull, "w"))  # noqa: SIM115
    for text in ("↓ mean 15/50/85th percentile shift per step", "a bb ccc dddd", "x" * 25 + " y",
                 "max rel. error, autograd ∂L/∂x (float32) vs (γ/σ)Pg"):
        longest = max(cell_len(w) for w in text.split())
        for width in (longest, longest + 1, longest + 5, 20, 60):  # the allocator never goes below
            if width < longest:
                continue
            lines = Text(text).wrap(console, width, overflow="fold")
            assert _wrapped_lines(text, width) == len(lines), (text, width)


# --------------------------------------------------------------------------- the notebook


def test_repr_is_at_most_20_lines(saved_results):
    import dataclasses

    import bncli

    for name in ("train", "saturation"):
        res = bncli.load(saved_results[name])
        text = repr(res)
        assert len(text.splitlines()) <= 20, text
        assert all(c.claim in text for c in res.claims)
        many = dataclasses.replace(res, claims=[dataclasses.replace(res.claims[0], lr=float(i))
                                                for i in range(50)])
        text = repr(bncli.api.Result.of(many))
        assert len(text.splitlines()) <= 20 and "more" in text, text
    assert len(repr(bncli.load(saved_results["train"] / "summary.json")).splitlines()) <= 20
    # a batch: one row per comparison x claim, cut at 20 lines, its exit code in the first
    from bncli.saved import BatchResult, Comparison

    comps = [Comparison(f"c{i}", name, bncli.load(saved_results[name]).claims)
             for i in range(5) for name in ("train", "saturation", "lipschitz")]
    batch = BatchResult({"batch_file": "b.yaml", "exit_code": 1, "counts": {"expectations": 3,
                                                                            "expectations_passed": 2}}, comps)
    text = repr(batch)
    lines = text.splitlines()
    assert len(lines) <= 20 and "exit code 1" in lines[0] and "2/3 met" in lines[0], text
    assert lines[2].startswith("c0 · train") and "more" in text


def test_claims_frame_columns_and_values(train_out):
    pytest.importorskip("pandas")
    import bncli

    res = bncli.load(train_out[2])
    df = res.claims_frame()
    assert list(df.columns) == ["claim", "lr", "arm", "baseline", "verdict", "leaning", "effect", "ci_low",
                                "ci_high", "beyond", "p_adj"]
    assert len(df) == len(res.claims)
    doc = res.to_json()
    for row, c in zip(df.itertuples(), doc["claims"], strict=True):
        m = _deciding(c)
        assert row.verdict == c["verdict"] and row.leaning == c["leaning"]
        assert row.effect == pytest.approx(m["effect"])
        assert [row.ci_low, row.ci_high] == pytest.approx(m["ci"])
        assert row.beyond == f"{m['beyond'][0]}/{m['beyond'][1]}"
        assert row.p_adj == pytest.approx(c["p_adj"])
    metrics = res.metrics_frame()
    assert len(metrics) == sum(len(c.metrics) for c in res.claims)
    assert set(metrics.metric) == {m.name for c in res.claims for m in c.metrics}


# --------------------------------------------------------------------------- --json


def test_json_is_compact_on_a_pipe_and_indented_on_a_terminal(write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory(threads=1, train={"steps": 4, "eval_every": 2}))
    cmd = [sys.executable, "-m", "bncli", "train", str(p), "--json", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    piped = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    assert len(piped.splitlines()) == 1 and json.loads(piped)["command"] == "train"
    if sys.platform == "win32":
        return
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=follower, stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command is done
            break
        if not data:
            break
        chunks.append(data)
    proc.wait()
    os.close(leader)
    shown = b"".join(chunks).decode().replace("\r\n", "\n")
    assert proc.returncode == 0
    assert len(shown.splitlines()) > 10 and shown.splitlines()[1].startswith("  ")
    assert json.loads(shown) == json.loads(piped) | {"runs": json.loads(shown)["runs"]}


# --------------------------------------------------------------------------- lipschitz views


def test_interpolation_barrier_against_closed_forms():
    import math
    from types import SimpleNamespace

    from bncli.probes.surface import surface_coords
    from bncli.render.landscape import interpolation_barrier

    def record(fn, points=21):
        ts = [0.5 + c for c in surface_coords(points, 1.0)]
        return SimpleNamespace(probes={"landscape_views": {"interpolation": {"t": ts, "loss": [fn(t) for t in ts]}}})

    # a bowl between the ends: no rise on the way
    assert interpolation_barrier(record(lambda t: (t - 0.5) ** 2)) == 0.0
    # a bump of height 1 at t = 0.5 above the chord 0.2·t between ends 0 and 0.2: the barrier is 1
    assert interpolation_barrier(record(lambda t: math.sin(math.pi * t) + 0.2 * t)) == pytest.approx(1.0)
    # t = 0 and 1 off the grid (11 points: step 0.2, an old result): the ends are interpolated linearly
    b = interpolation_barrier(record(lambda t: 2.0 - t, points=11))
    assert b == pytest.approx(0.0, abs=1e-12)

    def bump(t):
        return 4 * t * (1 - t)

    # a parabola with ends off that grid: L(0) and L(1) from the neighbours at ±0.1 (both −0.04·…
    # by the chord through them: 0.5·(bump(−0.1) + bump(0.1)) = −0.04), then the rise above the chord
    b = interpolation_barrier(record(bump, points=11))
    l0 = l1 = 0.5 * (bump(-0.1) + bump(0.1))
    assert l0 == pytest.approx(-0.04)
    inside = [0.5 + c for c in surface_coords(11, 1.0) if 0 < 0.5 + c < 1]
    assert b == pytest.approx(max(bump(t) - ((1 - t) * l0 + t * l1) for t in inside))
    assert b == pytest.approx(1.04)
    assert interpolation_barrier(SimpleNamespace(probes={})) is None


def test_effect_text_says_why_there_is_no_number():
    import math

    from bncli.render.claim_row import effect_text
    from bncli.results import MetricComparison

    nan = math.nan
    m = MetricComparison("loss", "lower", 0.1, nan, [0.1] * 3, [nan] * 3, nan, "neither", n_seeds=3,
                         nonfinite_baseline=3)
    assert effect_text(m) == "n/a: baseline 3/3 not finite"
    ok = MetricComparison("loss", "lower", 1.0, 2.0, [1.0] * 3, [2.0] * 3, -0.5, "claimed", n_seeds=3,
                          ci=[-0.6, -0.4])
    assert effect_text(ok) == "−50.0%[−60.0,−40.0]"
    big = MetricComparison("loss", "higher", 30.0, 2.0, [30.0] * 3, [2.0] * 3, 14.0, "claimed", n_seeds=3,
                           ci=[9.0, 20.0])
    assert effect_text(big) == "×15[×10,×21]"


def test_ci_text_writes_bounds_past_900_percent_as_ratios():
    """The --detail tables, report and expectation lines (claim_text.ci_text) say what the claim row
    says: an interval bound past +900 % as a ratio, never a 20-digit percentage."""
    from types import SimpleNamespace

    from bncli.claim_text import ci_text

    def m(effect, lo, hi):
        return SimpleNamespace(scale="ratio", rel_diff=effect, effect=effect, ci=[lo, hi])

    assert ci_text(m(0.352, 0.201, 0.51)) == "+35.2%[+20.1,+51.0]"
    assert ci_text(m(0.5, -0.2, 8.7e6)) == "×1.5[×0.8,×8.7e+6]"
    assert ci_text(m(222.0, 0.1, 7712.0)) == "×223[×1.1,×7713]"
    assert "%" not in ci_text(m(0.5, -0.2, 8.7e6))
