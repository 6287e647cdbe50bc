"""`bncli batch`: validation, matrix expansion, job sharing, expectations, exit codes, --jobs,
--resume, JUnit XML, worker death."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bncli.batch.expand import cell_name, expand, load_batch
from bncli.batch.expect import evaluate, metric_value
from bncli.batch.model import Expectation
from bncli.cli import app
from bncli.pipeline import run_analysis
from bncli.spec import parse_spec

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "data": {"source": "synthetic", "n_samples": 160, "n_features": 6, "n_classes": 3},
    "model": {"kind": "mlp", "hidden": [12, 10], "activation": "relu"},
    "train": {"lr": [0.1], "batch_size": 32, "steps": 12, "eval_every": 6},
    "device": "cpu",
    "threads": 1,
}


def write(tmp_path: Path, doc: dict, name: str = "b.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], lines[0]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("doc,needles", [
    ({"comparisons": [{"name": "a", "spec": TINY, "comand": "train"}]}, ["comparisons.0.comand", "unknown key"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "command": "trian"}]}, ["comparisons.0.command", "trian"]),
    ({"comparisons": []}, ["comparisons"]),
    ({"comparisons": [{"name": "a", "spec": TINY}, {"name": "a", "spec": TINY}]}, ["unique"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "expect": [{"claim": "C1"}]}]}, ["expect.0", "verdict"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "expect": [{"claim": "C1", "verdict": "yes"}]}]},
     ["expect.0.verdict"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "expect": [{"metric": "best_test_acc", "arm": "batchnorm"}]}]},
     ["at_least"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "expect": [
        {"metric": "best_tst_acc", "arm": "batchnorm", "at_least": 0.5}]}]}, ["unknown metric", "best_test_acc"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "expect": [{"diverged": "layernorm"}]}]}, ["no arm 'layernorm'"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "expect": [{"not_diverged": "plain", "lr": 0.3}]}]},
     ["expect.0.lr", "0.3"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "expect": [{"claim": "C4", "verdict": "supported"}]}]},
     ["C4 is not judged by train"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "overrides": {"train": {"stps": 3}}}]},
     ["comparisons.0 (a)", "train.stps"]),
    ({"comparisons": [{"name": "a", "spec": "missing.yaml"}]}, ["missing.yaml", "no such file"]),
    ({"comparisons": [{"name": "a", "spec": TINY, "matrix": {"model.hidden": [[8], [0]]}}]},
     ["a[hidden=0]", "model.hidden.0"]),
    ({"defaults": {"train": {"steps": "many"}}, "comparisons": [{"name": "a", "spec": TINY}]}, ["train.steps"]),
])
def test_bad_batch_files_are_one_line_exit_2(tmp_path, doc, needles):
    p = write(tmp_path, doc)
    one_line_error(runner.invoke(app, ["batch", str(p), "--jobs", "1"]), str(p), *needles)


def test_yaml_errors_and_missing_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("comparisons: [\n")
    one_line_error(runner.invoke(app, ["batch", str(p)]), str(p), "YAML")
    one_line_error(runner.invoke(app, ["batch", str(tmp_path / "nope.yaml")]), "no such file")


# ---------------------------------------------------------------- expansion


def test_matrix_expansion_merge_order_and_names(tmp_path):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "steps": 99}}))
    doc = {"defaults": {"train": {"steps": 20}, "seed": 3},
           "comparisons": [{"name": "m", "spec": "s.yaml", "overrides": {"train": {"eval_every": 5}},
                            "matrix": {"model.activation": ["relu", "tanh"], "train.lr": [0.1, 1.0]}}]}
    p = write(tmp_path, doc)
    cells = expand(p, load_batch(p), {"seeds": 2})
    assert [c.name for c in cells] == ["m[activation=relu,lr=0.1]", "m[activation=relu,lr=1]",
                                      "m[activation=tanh,lr=0.1]", "m[activation=tanh,lr=1]"]
    c = cells[3]
    assert c.spec.model.activation == "tanh" and c.spec.train.lr == [1.0]
    assert c.spec.train.steps == 20 and c.spec.train.eval_every == 5 and c.spec.seed == 3 and c.spec.seeds == 2
    assert c.folder == "m--activation=tanh,lr=1".replace(",", "_")
    assert cell_name("x", {"arms": ["plain", "batchnorm"]}) == "x[arms=plain+batchnorm]"


def test_identical_jobs_are_shared_and_dry_run_trains_nothing(tmp_path):
    doc = {"comparisons": [{"name": "a", "spec": TINY}, {"name": "b", "spec": {**TINY, "name": "other"}}]}
    p = write(tmp_path, doc)
    res = runner.invoke(app, ["batch", str(p), "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert len(d["jobs"]) == 4 and d["distinct"] == 2 and d["to_run"] == 2
    assert not (tmp_path / "jobs").exists()


# ---------------------------------------------------------------- expectations


@pytest.fixture(scope="module")
def tiny_result():
    spec = parse_spec({**TINY, "train": {**TINY["train"], "lr": [0.1, 50.0]}})
    return run_analysis(spec, "lipschitz")


@pytest.mark.parametrize("exp,passed", [
    ({"claim": "C5", "verdict": "supported"}, True),
    ({"claim": "C5", "verdict": "refuted"}, False),
    ({"claim": "C5", "verdict_in": ["refuted", "supported"], "lr": 0.1, "arm": "batchnorm"}, True),
    ({"metric": "best_test_acc", "arm": "batchnorm", "lr": 0.1, "at_least": 0.0}, True),
    ({"metric": "best_test_acc", "arm": "batchnorm", "lr": 0.1, "at_least": 1.01}, False),
    ({"metric": "final_train_loss", "arm": "batchnorm", "lr": 0.1, "at_most": 1e-9}, False),
    ({"metric": "grad_norm", "arm": "batchnorm", "lr": 0.1, "less_than_arm": "plain", "by": 1e9}, False),
    ({"metric": "grad_norm", "arm": "batchnorm", "lr": 0.1, "greater_than_arm": "plain", "by": 1e9}, False),
    ({"diverged": "plain", "lr": 50.0}, True),
    ({"not_diverged": "plain", "lr": 50.0}, False),
    ({"not_diverged": "plain", "lr": 0.1}, True),
])
def test_every_expectation_form(tiny_result, exp, passed):
    o = evaluate("c", "lipschitz", Expectation(**exp), tiny_result)
    assert o.passed is passed, o.detail
    assert o.detail


def test_metric_values_come_from_the_tables(tiny_result):
    land = {r["arm"]: r for r in tiny_result.tables["landscape"] if r["lr"] == 0.1}
    v = metric_value(tiny_result, "loss_variation", "batchnorm", 0.1)
    assert v == land["batchnorm"]["loss_variation_mean"]
    acc = next(s for s in tiny_result.summary if s.arm == "plain" and s.lr == 0.1).best_test_acc[0]
    assert metric_value(tiny_result, "best_test_acc", "plain", 0.1) == acc
    # a comparison of two metrics: whichever way the numbers go, exactly one of < and > holds
    lt = evaluate("c", "l", Expectation(metric="grad_norm", arm="batchnorm", lr=0.1, less_than_arm="plain"),
                  tiny_result)
    gt = evaluate("c", "l", Expectation(metric="grad_norm", arm="batchnorm", lr=0.1, greater_than_arm="plain"),
                  tiny_result)
    assert lt.passed != gt.passed


# ---------------------------------------------------------------- running, exit codes, files


def _batch(tmp_path, expect, **comp):
    return write(tmp_path, {"comparisons": [{"name": "t", "spec": TINY, "expect": expect, **comp}]})


def test_exit_0_and_1_and_junit(tmp_path):
    ok = _batch(tmp_path, [{"not_diverged": "batchnorm"}, {"metric": "best_test_acc", "arm": "plain",
                                                           "at_least": 0.0}])
    res = runner.invoke(app, ["batch", str(ok), "--jobs", "1", "--junit-xml", str(tmp_path / "j.xml")])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[-1].strip() == "2 expectations: 2 met, 0 unmet (exit 0)"
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.tag == "testsuites" and root.get("tests") == "2" and root.get("failures") == "0"
    bad = _batch(tmp_path, [{"metric": "best_test_acc", "arm": "plain", "at_least": 2.0}])
    res = runner.invoke(app, ["batch", str(bad), "--jobs", "1", "--json", "--junit-xml", str(tmp_path / "k.xml")])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert doc["kind"] == "batch" and doc["exit_code"] == 1
    (o,) = doc["expectations"]
    assert o["passed"] is False and "missed by" in o["detail"]
    cases = ET.parse(tmp_path / "k.xml").getroot().findall(".//testcase")
    assert len(cases) == 1 and cases[0].find("failure") is not None


def test_known_deviation_is_skipped_with_its_reason_not_passed(tmp_path, tiny_result):
    e = Expectation(metric="best_test_acc", arm="plain", lr=0.1, at_least=2.0, known_deviation="too small")
    o = evaluate("c", "lipschitz", e, tiny_result)
    assert o.skipped and not o.passed and o.detail.startswith("known deviation: too small")
    met = evaluate("c", "lipschitz", Expectation(**{**e.model_dump(exclude_none=True), "at_least": 0.0}), tiny_result)
    assert met.passed and not met.skipped and "known deviation" in met.detail
    dev = _batch(tmp_path, [{"metric": "best_test_acc", "arm": "plain", "at_least": 2.0,
                             "known_deviation": "a prediction this scale misses"}])
    res = runner.invoke(app, ["batch", str(dev), "--jobs", "1", "--junit-xml", str(tmp_path / "s.xml")])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[-1].strip() == "1 expectation: 0 met, 1 known deviation, 0 unmet (exit 0)"
    root = ET.parse(tmp_path / "s.xml").getroot()
    assert root.get("skipped") == "1" and root.get("failures") == "0"
    (case,) = root.findall(".//testcase")
    assert case.find("skipped").get("message") == "known deviation: a prediction this scale misses"


def test_exit_3_when_a_job_fails_and_the_rest_finish(tmp_path, monkeypatch):
    import bncli.runner.single as serial

    real = serial.run_job

    def flaky(job, *a, **kw):
        if job.arm == "batchnorm":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(job, *a, **kw)

    monkeypatch.setattr(serial, "run_job", flaky)
    p = _batch(tmp_path, [{"not_diverged": "plain"}])
    res = runner.invoke(app, ["batch", str(p), "--jobs", "1", "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 3, res.output
    doc = json.loads(res.stdout)
    (cmp,) = doc["comparisons"]
    assert cmp["failed_jobs"][0]["error"].startswith("RuntimeError: CUDA out of memory")
    assert doc["counts"]["failed"] == 1
    assert len(list((tmp_path / "o" / "jobs").glob("*.json"))) == 1  # plain's job finished and is stored


def test_exit_130_keeps_finished_jobs_and_resume_finishes(tmp_path, monkeypatch):
    import bncli.runner.single as serial

    real = serial.run_job
    calls = []

    def interrupt_second(job, *a, **kw):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, *a, **kw)

    monkeypatch.setattr(serial, "run_job", interrupt_second)
    p = _batch(tmp_path, [{"not_diverged": "plain"}], matrix={"seed": [0, 1]})
    out = tmp_path / "o"
    res = runner.invoke(app, ["batch", str(p), "--jobs", "1", "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert len(list((out / "jobs").glob("*.json"))) == 1
    monkeypatch.setattr(serial, "run_job", real)
    res = runner.invoke(app, ["batch", str(p), "--jobs", "1", "--out", str(out), "--resume", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"] == {"jobs": 4, "reused": 1, "rerun": 0, "failed": 0, "expectations": 2,
                                                "expectations_passed": 2, "expectations_skipped": 0}


def _records(out: Path) -> dict[str, dict]:
    recs = {}
    for f in (out / "jobs").glob("*.json"):
        d = json.loads(f.read_text())
        d["record"].pop("wall_s")
        recs[d["key"]] = d["record"]
    return recs


def test_jobs_2_is_bitwise_jobs_1(tmp_path):
    p = _batch(tmp_path, [], command=["train", "measure-ics"], matrix={"train.lr": [0.1, 0.5]})
    for n in (1, 2):
        res = runner.invoke(app, ["batch", str(p), "--jobs", str(n), "--out", str(tmp_path / f"o{n}"), "-q"])
        assert res.exit_code == 0, res.output
    a, b = _records(tmp_path / "o1"), _records(tmp_path / "o2")
    assert len(a) == 8 and a == b


def test_resume_after_the_process_is_killed(tmp_path):
    """SIGKILL right after the second job is stored (a known point, not a guessed time): the
    stored jobs are whole, and --resume reuses exactly them and gives the uninterrupted records."""
    p = _batch(tmp_path, [], matrix={"seed": [0, 1, 2, 3]}, overrides={"train": {"steps": 60}})
    out = tmp_path / "o"
    env = {**os.environ, "COLUMNS": "120"}
    cmd = [sys.executable, str(Path(__file__).parent / "signal_after.py"), "2", "SIGKILL",
           "batch", str(p), "--jobs", "1", "--out", str(out), "-q"]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.returncode == -signal.SIGKILL
    stored = len(list(out.glob("jobs/*.json")))
    assert stored == 2 and not (out / "batch.json").exists()
    res = runner.invoke(app, ["batch", str(p), "--jobs", "1", "--out", str(out), "--resume", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"]["reused"] == stored
    fresh = tmp_path / "fresh"
    assert runner.invoke(app, ["batch", str(p), "--jobs", "1", "--out", str(fresh), "-q"]).exit_code == 0
    assert _records(out) == _records(fresh)


def test_a_dead_worker_fails_only_its_job(tmp_path):
    from batch_helpers import DieOnce

    from bncli.executors import execute
    from bncli.executors.local import LocalExecutor
    from bncli.plan import plan

    spec = parse_spec({**TINY, "seeds": 2})
    jobs = plan(spec, "train")
    ex = execute(jobs, LocalExecutor(2, threads=1, probe_factory=DieOnce("batchnorm", 1, str(tmp_path / "m"),
                                                                          always=True)))
    assert len(ex.records) == 3
    (f,) = ex.failures
    assert f.job.arm == "batchnorm" and f.job.seed == 1 and "worker process died" in f.error


def test_sample_ci_smoke_batch_runs_end_to_end(tmp_path):
    res = runner.invoke(app, ["batch", str(ROOT / "sample_configs" / "ci_smoke.yaml"), "--out", str(tmp_path / "o"),
                              "--junit-xml", str(tmp_path / "j.xml"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["counts"]["expectations"] >= 3 and doc["counts"]["expectations_passed"] == doc["counts"]["expectations"]
    assert (tmp_path / "o" / "batch.json").exists()
    for c in doc["comparisons"]:
        assert (tmp_path / "o" / c["path"] / "summary.json").exists()
    # one colour per arm across the batch: the report's claim figures are the comparisons' own
    # plots (taken, not drawn again), and `bncli report` draws them afresh byte for byte
    files = tmp_path / "o" / "report_files"
    report_figs = {p.name: p.read_bytes() for p in files.iterdir() if p.name != "regimes.png" and "_C9_" not in p.name}
    plots = {p.read_bytes() for p in (tmp_path / "o").glob("*/*/plots/*.png")}
    assert report_figs and set(report_figs.values()) <= plots
    res = runner.invoke(app, ["report", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert {p.name: p.read_bytes() for p in files.iterdir() if p.name in report_figs} == report_figs


@pytest.mark.parametrize("cmd", ["batch", "train"])
def test_backend_ray_without_ray_is_exit_2_with_the_install_hint(tmp_path, monkeypatch, cmd):
    monkeypatch.setitem(sys.modules, "ray", None)
    target = _batch(tmp_path, []) if cmd == "batch" else write(tmp_path, TINY, "s.yaml")
    res = runner.invoke(app, [cmd, str(target), "--backend", "ray"])
    assert res.exit_code == 2, res.output
    assert "pip install" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_out_writes_the_report_unless_no_report(tmp_path):
    spec = write(tmp_path, TINY, "s.yaml")
    res = runner.invoke(app, ["train", str(spec), "--out", str(tmp_path / "a"), "-q"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a" / "report.html").stat().st_size > 0 and (tmp_path / "a" / "report.md").exists()
    doc = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert doc["command_line"].split()[0] == "bncli"  # what sys.argv held (pytest's own here)
    res = runner.invoke(app, ["train", str(spec), "--out", str(tmp_path / "b"), "-q", "--no-report"])
    assert res.exit_code == 0 and not (tmp_path / "b" / "report.html").exists()
    p = _batch(tmp_path, [{"not_diverged": "plain"}])
    res = runner.invoke(app, ["batch", str(p), "--jobs", "1", "--out", str(tmp_path / "c"), "-q"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c" / "report.html").exists() and (tmp_path / "c" / "batch.json").exists()
