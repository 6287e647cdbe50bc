"""`bncli export tensorboard|mlflow` and `--tensorboard` while running: read back with TensorBoard's
event reader and MLflow's client (a local file: store), equal to summary.json."""

from __future__ import annotations

import json
import math
import os

import pytest
from typer.testing import CliRunner

from bncli.cli import app

pytest.importorskip("tensorboard")
runner = CliRunner()


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _finite(steps, values):
    return [(s, v) for s, v in zip(steps, values) if v is not None and math.isfinite(v)]


def _check_tensorboard(logdir, doc, comparison):
    for run in doc["runs"]:
        d = logdir / comparison / run["arm"] / f"lr={run['lr']:g}" / f"seed={run['seed']}"
        acc = _events(d)
        for key in ("train_loss", "test_loss", "test_acc"):
            got = [(e.step, e.value) for e in acc.Scalars(key)]
            want = _finite(run["steps"], run[key])
            assert [s for s, _ in got] == [s for s, _ in want]
            assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)  # float32 in events
        assert {"spec/text_summary", "verdicts/text_summary"} <= set(acc.Tags()["tensors"])
    return acc


def test_export_tensorboard_reads_back_equal_to_summary(saved_results, tmp_path):
    folder = saved_results["measure-ics"]
    doc = json.loads((folder / "summary.json").read_text())
    logdir = tmp_path / "tb"
    res = runner.invoke(app, ["export", "tensorboard", str(folder), "--logdir", str(logdir)])
    assert res.exit_code == 0, res.output
    acc = _check_tensorboard(logdir, doc, "tiny/measure-ics")
    # a probe's per-step series, by step (the last run checked: batchnorm)
    run = doc["runs"][-1]
    p = run["probes"]["ics_dist"]
    got = [(e.step, e.value) for e in acc.Scalars("ics_dist/per_layer/layer2/preact/w1")]
    want = _finite(p["steps"], p["per_layer"]["layer2"]["preact"]["w1"])
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
    text = acc.Tensors("verdicts/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "C2" in text and doc["claims"][0]["verdict"] in text
    again = runner.invoke(app, ["export", "tensorboard", str(folder), "--logdir", str(logdir)])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, ["export", "tensorboard", str(folder), "--logdir", str(logdir), "--force"]).exit_code == 0


def test_tensorboard_while_running(tmp_path, write_spec, tiny_spec_dict_factory):
    spec = write_spec(tiny_spec_dict_factory(train={"steps": 12, "eval_every": 6}))
    logdir = tmp_path / "live"
    res = runner.invoke(app, ["train", str(spec), "--json", "--quiet", "--tensorboard", str(logdir)])
    assert res.exit_code == 0, res.output
    _check_tensorboard(logdir, json.loads(res.stdout), "tiny/train")


def test_export_mlflow_reads_back_equal_to_summary(saved_results, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    folder = saved_results["train"]  # has report.html
    doc = json.loads((folder / "summary.json").read_text())
    uri = (tmp_path / "mlruns").as_uri()
    res = runner.invoke(app, ["export", "mlflow", str(folder), "--tracking-uri", uri, "--experiment", "t"])
    assert res.exit_code == 0, res.output
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("t")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("bncli.kind") == "parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(doc["runs"]) == 4
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["report.html"]
    claim = doc["claims"][0]
    assert parent.data.tags[f"verdict.tiny/train.C1.lr_{claim['lr']:g}.{claim['arm']}_vs_{claim['baseline']}"] \
        == claim["verdict"]
    for run in doc["runs"]:
        child = next(c for c in children if c.data.tags["arm"] == run["arm"]
                     and c.data.tags["lr"] == f"{run['lr']:g}" and c.data.tags["seed"] == str(run["seed"]))
        assert child.info.run_name == f"tiny/train/{run['arm']}/lr={run['lr']:g}/seed={run['seed']}"
        assert child.data.params["train.lr"] == json.dumps([run["lr"]])
        assert child.data.params["train.steps"] == "12" and child.data.params["name"] == "tiny"
        hist = sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, "train_loss"))
        assert hist == _finite(run["steps"], run["train_loss"])
        assert any(k.startswith("verdict.C1.") for k in child.data.tags)


def test_export_errors_are_one_line(tmp_path):
    res = runner.invoke(app, ["export", "tensorboard", str(tmp_path / "none"), "--logdir", str(tmp_path / "tb")])
    assert res.exit_code == 2 and "no such file or folder" in res.output
    assert os.environ.get("BNCLI_DEBUG") is None
