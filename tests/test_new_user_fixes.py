"""What a new user hit (issue 24): --lr 0.1,0.5, validate's long line, dry-run cell names, a resume
with nothing to run, batch.json after a resume, the overall ETA, JUnit times, report wording."""

from __future__ import annotations

import dataclasses
import json
import time
import xml.etree.ElementTree as ET

import yaml
from typer.testing import CliRunner

import bncli
from bncli.cli import app
from bncli.render.report_write import write_report

runner = CliRunner()


def test_lr_with_a_comma_says_repeat(write_spec, tiny_spec_dict_factory):
    res = runner.invoke(app, ["train", str(write_spec(tiny_spec_dict_factory())), "--lr", "0.1,0.5"])
    assert res.exit_code == 2 and "repeat --lr for a sweep: --lr 0.1 --lr 0.5" in res.output


def test_validate_wraps_to_the_terminal(write_spec, tiny_spec_dict_factory, monkeypatch):
    path = write_spec(tiny_spec_dict_factory())
    monkeypatch.chdir(path.parent)  # a short path: a long temporary folder's name cannot wrap
    res = runner.invoke(app, ["validate", path.name], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("ok: ") and len(lines) > 2 and all(len(x) <= 80 for x in lines)


def _batch(tmp_path, spec, matrix=None):
    comp = {"name": "m", "spec": spec, "command": ["train"], "expect": [{"not_diverged": "batchnorm"}]}
    if matrix:
        comp["matrix"] = matrix
    p = tmp_path / "b.yaml"
    p.write_text(yaml.safe_dump({"comparisons": [comp]}))
    return p


def test_dry_run_names_matrix_cells(tmp_path, tiny_spec_dict_factory):
    b = _batch(tmp_path, tiny_spec_dict_factory(), {"model.activation": ["relu", "tanh"]})
    res = runner.invoke(app, ["batch", str(b), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "m[activation=relu]" in res.stdout and "m[activation=tanh]" in res.stdout


def test_resume_with_nothing_to_run_starts_no_workers(tmp_path, tiny_spec_dict_factory, monkeypatch):
    b = _batch(tmp_path, tiny_spec_dict_factory(train={"steps": 6, "eval_every": 3}))
    out, junit = tmp_path / "o", tmp_path / "j.xml"
    res = runner.invoke(app, ["batch", str(b), "--out", str(out), "--jobs", "1", "--quiet", "--no-report",
                              "--junit-xml", str(junit)])
    assert res.exit_code == 0, res.output
    first = json.loads((out / "batch.json").read_text())
    cases = ET.parse(junit).getroot().iter("testcase")
    assert all(float(c.get("time")) > 0 for c in cases)

    from bncli.executors import local

    def no_workers(*a, **k):
        raise AssertionError("workers started for a resume with nothing to run")

    monkeypatch.setattr(local.LocalExecutor, "__init__", no_workers)
    res = runner.invoke(app, ["batch", str(b), "--out", str(out), "--jobs", "4", "--quiet", "--no-report",
                              "--resume"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "batch.json").read_text())
    assert doc["counts"]["reused"] == doc["counts"]["jobs"]
    assert doc["previous_runs"] == [{"command_line": first["command_line"], "wall_s": first["wall_s"],
                                     "interrupted": False}]


def test_overall_eta_after_the_first_run():
    from rich.progress import Progress

    from bncli.render.progress import RunsRemainingColumn

    p = Progress(RunsRemainingColumn())
    t = p.add_task("all runs", total=4, unit="runs")
    p.start_task(t)
    time.sleep(0.05)
    p.advance(t, 1)
    assert ":" in str(p.columns[0].render(p.tasks[0])) and "-" not in str(p.columns[0].render(p.tasks[0]))


def test_report_wording(saved_results, tmp_path):
    """C8 without the batchnorm_noaffine arm says so; a classification table says 'acc'."""
    res = bncli.load(saved_results["saturation"])
    spec = {**res.spec, "arms": [a for a in res.spec["arms"] if a["name"] != "batchnorm_noaffine"]}
    res = dataclasses.replace(res, spec=spec, claims=[c for c in res.claims if c.claim != "C8"],
                              runs=[r for r in res.runs if r.arm != "batchnorm_noaffine"])
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(res.to_json()))
    write_report(folder, ("md",), jobs=1)
    md = (folder / "report.md").read_text()
    assert "`batchnorm_noaffine` arm" in md and "complete, paired runs" not in md
    assert "| best held-out acc |" in md and "(MSE)" not in md
