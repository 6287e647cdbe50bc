"""The Python API: bncli.run / bncli.load, to_pandas(), claims_frame(), the notebook's HTML, and
Ctrl-C keeping the finished runs without touching the interpreter's signal handlers."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

import bncli
from bncli.errors import SpecError, UsageError
from bncli.results import CommandResult
from bncli.saved import BatchResult

pd = pytest.importorskip("pandas")
COMMANDS = ["train", "measure-ics", "lipschitz", "scale-check", "saturation"]


def test_import_bncli_stays_light():
    code = "import sys, bncli; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("name", COMMANDS)
def test_load_and_convert_every_subcommand(saved_results, name):
    res = bncli.load(saved_results[name])
    assert isinstance(res, CommandResult) and res.command == name
    assert res.to_json() == bncli.load(saved_results[name] / "summary.json").to_json()
    df = res.to_pandas()
    assert list(df.columns) == ["run", "arm", "lr", "seed", "step", "metric", "value"]
    assert set(df.run) == {f"{r.arm} lr={r.lr:g} seed={r.seed}" for r in res.runs}
    loss = df[(df.metric == "train_loss") & (df.arm == res.runs[0].arm) & (df.lr == res.runs[0].lr)
              & (df.seed == res.runs[0].seed)]
    assert list(loss.step) == res.runs[0].steps and list(loss.value) == pytest.approx(res.runs[0].train_loss)
    if name != "train":
        assert df.metric.str.contains("/").any(), "the probes' per-step series are there too"
    claims = res.claims_frame()
    assert len(claims) == len(res.claims)  # one row per claim x lr x arm
    assert set(claims.verdict) == {c.verdict for c in res.claims}
    assert len(res.metrics_frame()) == sum(max(1, len(c.metrics)) for c in res.claims)
    html = res._repr_html_()
    assert "<table" in html and all(f"v-{c.verdict}" in html for c in res.claims)


def test_run_with_command_line_overrides(tiny_spec_dict_factory, tmp_path):
    res = bncli.run("train", tiny_spec_dict_factory(), steps=8, lr=[0.1, 0.2], seeds=2, arms="plain,batchnorm",
                    threads=1)
    assert {(r.lr, r.seed) for r in res.runs} == {(0.1, 0), (0.1, 1), (0.2, 0), (0.2, 1)}
    assert all(r.steps_done == 8 for r in res.runs) and not res.interrupted
    with pytest.raises(UsageError, match="unknown option"):
        bncli.run("train", tiny_spec_dict_factory(), stepz=3)
    with pytest.raises(UsageError, match="unknown command"):
        bncli.run("nope", tiny_spec_dict_factory())
    with pytest.raises(SpecError, match="steps"):
        bncli.run("train", tiny_spec_dict_factory(), steps=-1)


def test_keyboard_interrupt_keeps_finished_runs_and_the_handlers(tiny_spec_dict_factory, monkeypatch):
    """A notebook's interrupt arrives as KeyboardInterrupt: the result holds the finished runs."""
    from bncli import pipeline

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    real = pipeline.run_analysis

    def interrupting(spec, analysis, reporter=None, executor=None, on_job=None):
        class Stop:  # the kernel's interrupt after the first run finished
            def start_plan(self, n): pass
            def start_run(self, label, total): pass
            def advance(self, n): pass
            def end_run(self): pass
            def job_done(self): raise KeyboardInterrupt

        return real(spec, analysis, Stop(), executor, on_job)

    monkeypatch.setattr(pipeline, "run_analysis", interrupting)
    res = bncli.run("train", tiny_spec_dict_factory(), steps=6, seeds=2)
    assert res.interrupted and len(res.runs) == 1
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_load_a_batch(tmp_path, tiny_spec_dict_factory):
    import yaml
    from typer.testing import CliRunner

    from bncli.cli import app

    b = tmp_path / "b.yaml"
    b.write_text(yaml.safe_dump({"comparisons": [{"name": "c", "spec": tiny_spec_dict_factory(
        train={"steps": 6, "eval_every": 3}), "command": ["train"]}]}))
    res = CliRunner().invoke(app, ["batch", str(b), "--out", str(tmp_path / "o"), "--jobs", "1", "--quiet",
                                   "--no-report"])
    assert res.exit_code == 0, res.output
    batch = bncli.load(tmp_path / "o")
    assert isinstance(batch, BatchResult) and [c.name for c in batch.comparisons] == ["c"]
    df = batch.to_pandas()
    assert set(df.comparison) == {"c"} and (df.metric == "train_loss").any()
    assert len(batch.claims_frame()) >= 1 and "<table" in batch._repr_html_()
