"""CLI: real trainings through typer's CliRunner, --json schema, --out files, exit codes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from typer.testing import CliRunner

from bncli.cli import app
from bncli.results import SCHEMA_VERSION

runner = CliRunner()


def test_train_table_and_verdict(write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory())
    result = runner.invoke(app, ["train", str(p), "--quiet"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "final train loss" in out and "batchnorm" in out and "plain" in out
    assert "(arms vs plain)" in out  # one baseline: named in the claims table's title
    claim_rows = [line for line in out.splitlines() if line.startswith("C1 ")]
    assert len(claim_rows) == 1 and "batchnorm" in claim_rows[0]
    # one seed: exploratory, with the one way the numbers lean
    assert "exploratory→" in claim_rows[0]
    assert sum(v in claim_rows[0] for v in ("supported", "refuted", "inconclusive")) == 1
    assert "lr=0.1: batchnorm - plain" not in out  # the arm-minus-baseline lines: --detail only
    detail = runner.invoke(app, ["train", str(p), "--quiet", "--detail"])
    assert detail.exit_code == 0 and "lr=0.1: batchnorm - plain" in detail.stdout


def test_train_json_is_the_only_stdout(write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory())
    args = ["train", str(p), "--json", "--lr", "0.05", "--lr", "0.2", "--seeds", "2", "--steps", "12"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["command"] == "train"
    assert doc["spec"]["train"]["lr"] == [0.05, 0.2] and doc["spec"]["train"]["steps"] == 12
    assert len(doc["runs"]) == 2 * 2 * 2
    assert {"arm", "lr", "seed", "steps", "train_loss", "test_acc", "diverged_at"} <= set(doc["runs"][0])
    assert len(doc["summary"]) == 4
    claims = doc["claims"]
    assert {c["lr"] for c in claims} == {0.05, 0.2}
    for c in claims:
        assert c["claim"] == "C1" and c["statement"]
        assert c["verdict"] in {"supported", "refuted", "inconclusive", "exploratory"}
        assert c["arm"] == "batchnorm" and c["baseline"] == "plain"
        assert all({"name", "arm_mean", "baseline_mean", "points"} <= set(m) for m in c["metrics"])


def test_train_out_dir(tmp_path, write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory())
    out = tmp_path / "runs" / "exp1"
    result = runner.invoke(app, ["train", str(p), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["command"] == "train"
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert {r["arm"] for r in rows} == {"plain", "batchnorm"}
    assert (out / "spec.yaml").read_text().startswith("name: tiny")
    png = out / "plots" / "training.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp"))


def test_divergence_exit_zero_and_reported(write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory())
    result = runner.invoke(app, ["train", str(p), "--lr", "1e6", "--steps", "20", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert any(r["diverged_at"] is not None for r in doc["runs"])


def test_bad_inputs_exit_2_with_one_line(tmp_path, write_spec, tiny_spec_dict_factory):
    cases = [
        [str(tmp_path / "missing.yaml")],
        [str(write_spec({"model": {"hidden": [3, -1]}}, "a.yaml"))],
        [str(write_spec({"trian": {}}, "b.yaml"))],
        [str(write_spec(tiny_spec_dict_factory(), "c.yaml")), "--device", "cuda:7"],
        [str(write_spec(tiny_spec_dict_factory(), "d.yaml")), "--arms", "plain,bogus"],
        [str(write_spec(tiny_spec_dict_factory(), "e.yaml")), "--batch-size", "0"],
        [str(write_spec(tiny_spec_dict_factory(model={"kind": "cnn"}), "f.yaml"))],
    ]
    for args in cases:
        result = runner.invoke(app, ["train", *args])
        assert result.exit_code == 2, (args, result.output)
        err = result.stderr.strip()
        assert err.startswith("error:"), (args, err)
        assert len(err.splitlines()) == 1, err
        assert "Traceback" not in result.output


def test_yaml_syntax_error_cli(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("train:\n  lr: [0.1\n")
    result = runner.invoke(app, ["validate", str(p)])
    assert result.exit_code == 2
    assert "line" in result.stderr and str(p) in result.stderr


def test_validate_ok_and_json(write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory())
    result = runner.invoke(app, ["validate", str(p)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout and "160 train / 40 held-out" in result.stdout
    result = runner.invoke(app, ["validate", str(p), "--json"])
    assert json.loads(result.stdout)["name"] == "tiny"


def test_python_m_bncli_help():
    proc = subprocess.run([sys.executable, "-m", "bncli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for cmd in ("train", "validate", "measure-ics", "lipschitz", "scale-check", "saturation"):
        assert cmd in proc.stdout


def test_errors_name_the_spec_file_and_print_literally(tmp_path, write_spec, tiny_spec_dict_factory):
    folder = tmp_path / "exp[lr]"
    folder.mkdir()
    p = folder / "s.yaml"
    p.write_text("model: {kind: cnn}\n")  # cnn on flat digits: found after loading the data
    result = runner.invoke(app, ["train", str(p)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {p}: model.kind: cnn needs image inputs"), result.stderr
    bad = write_spec(tiny_spec_dict_factory(analysis={"scale": {"layers": ["layer9"]}}), "l.yaml")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: analysis.scale.layers: no normalization point named layer9" in result.stderr


def test_unexpected_error_is_one_literal_line(monkeypatch, write_spec, tiny_spec_dict_factory):
    import bncli.pipeline

    def boom(*a, **k):
        raise RuntimeError("[bold]shape mismatch[/bold]\nsecond line")

    monkeypatch.setattr(bncli.pipeline, "run_analysis", boom)
    result = runner.invoke(app, ["train", str(write_spec(tiny_spec_dict_factory()))])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: run failed: RuntimeError: [bold]shape mismatch[/bold] (set BNCLI_DEBUG=1 for the traceback)"
    )


def test_bad_out_fails_before_training(tmp_path, write_spec, tiny_spec_dict_factory):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = runner.invoke(app, ["train", str(write_spec(tiny_spec_dict_factory())), "--json",
                                 "--out", str(blocker / "sub")])
    assert result.exit_code == 2
    assert result.stdout == ""  # nothing trained, nothing printed
    assert result.stderr.startswith("error: --out: cannot write to folder")


def test_empty_spec_is_an_error(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing here\n")
    result = runner.invoke(app, ["validate", str(p)])
    assert result.exit_code == 2 and "empty" in result.stderr
