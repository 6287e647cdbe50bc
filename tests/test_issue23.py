"""Regressions of the reliability review (issue 23): writes and deletes stay inside --out, resume
checks what it reuses, names and matrices are checked up front, handlers are restored."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bncli.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_spec_dict  # noqa: E402

runner = CliRunner()
FAST = {"train": {"steps": 4, "eval_every": 2, "lr": 0.1, "batch_size": 32}}


def _spec(tmp_path: Path, **over) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_spec_dict(**{**FAST, **over})))
    return p


def _batch(tmp_path: Path, comparisons: list[dict], name: str = "b.yaml", **top) -> Path:
    _spec(tmp_path)
    p = tmp_path / name
    p.write_text(yaml.safe_dump({**top, "comparisons": comparisons}, sort_keys=False))
    return p


# ------------------------------------------------------------------ 1: handlers restored


def test_commands_restore_every_signal_handler_they_or_a_library_change(tmp_path, monkeypatch):
    import bncli.spec

    real = bncli.spec.load_spec

    def meddling(path):  # a library (ray.init) that installs its own handlers mid-command
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return real(path)

    monkeypatch.setattr(bncli.spec, "load_spec", meddling)
    mine = lambda *_: None  # noqa: E731
    old_int, old_term = signal.signal(signal.SIGINT, mine), signal.signal(signal.SIGTERM, mine)
    try:
        res = runner.invoke(app, ["train", str(_spec(tmp_path)), "--steps", "2"])
        assert res.exit_code == 0, res.output
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


# ------------------------------------------------------------------ 2, 9: names


@pytest.mark.parametrize("name", [".", "..", ".hidden", "x" * 300])
def test_a_comparison_name_that_is_a_path_or_too_long_is_exit_2_before_training(tmp_path, name):
    p = _batch(tmp_path, [{"name": name, "spec": "s.yaml"}])
    (tmp_path / "sub").mkdir()
    res = runner.invoke(app, ["batch", str(p), "--out", str(tmp_path / "sub" / "out")])
    assert res.exit_code == 2, res.output
    assert "comparisons.0.name" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "sub" / "train").exists() and not (tmp_path / "sub" / "out").exists()


def test_a_long_cell_name_gets_a_short_folder(tmp_path):
    from bncli.batch.expand import MAX_FOLDER

    p = _batch(tmp_path, [{"name": "n" * 100, "spec": "s.yaml", "matrix": {"model.activation": ["relu"],
                                                                           "train.batch_size": [16]}}])
    cells = __import__("bncli.batch.expand", fromlist=["x"]).expand(p, __import__(
        "bncli.batch.expand", fromlist=["x"]).load_batch(p))
    assert len(cells[0].folder) <= MAX_FOLDER


# ------------------------------------------------------------------ 3: deletes never follow links


def _a_batch_out(tmp_path: Path) -> tuple[Path, Path]:
    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}])
    out = tmp_path / "out"
    res = runner.invoke(app, ["batch", str(p), "--out", str(out), "-q", "--no-report"])
    assert res.exit_code == 0, res.output
    return p, out


def test_report_and_force_never_delete_through_a_symbolic_link(tmp_path):
    p, out = _a_batch_out(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("keep.png", "keep.json"):
        (elsewhere / name).write_text("mine")
    (out / "report_files").symlink_to(elsewhere)
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert (elsewhere / "keep.png").read_text() == "mine"
    assert (out / "report_files").is_dir() and not (out / "report_files").is_symlink()
    for sub in ("jobs", "plots"):
        target = out / "a" / "train" / sub
        if target.is_dir() and not target.is_symlink():
            import shutil

            shutil.rmtree(target)
        target.symlink_to(elsewhere)
    res = runner.invoke(app, ["batch", str(p), "--out", str(out), "-q", "--force", "--no-report"])
    assert res.exit_code == 0, res.output
    assert sorted(x.name for x in elsewhere.iterdir()) == ["keep.json", "keep.png"]


# ------------------------------------------------------------------ 4: resume checks what it reuses


def _jobs(out: Path) -> list[Path]:
    return sorted((out / "jobs").glob("*.json"))


def test_resume_reruns_edited_foreign_and_broken_job_files_and_says_why(tmp_path):
    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}], defaults={"seeds": 2})
    out = tmp_path / "out"
    assert runner.invoke(app, ["batch", str(p), "--out", str(out), "-q", "--no-report"]).exit_code == 0
    files = _jobs(out)
    assert len(files) == 4
    edited = json.loads(files[0].read_text())
    edited["record"]["train_loss"][-1] = 0.0  # a better number by hand
    files[0].write_text(json.dumps(edited))
    files[1].write_text(files[2].read_text())  # another job's record
    files[3].write_text('{"format": 1, "record": {"arm": 3}}')  # structurally wrong
    res = runner.invoke(app, ["batch", str(p), "--out", str(out), "--resume", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["counts"]["reused"] == 1 and doc["counts"]["rerun"] == 3
    assert "edited after it was written" in doc["rerun_reasons"]
    assert "rerunning 3" in res.stderr
    fresh = tmp_path / "fresh"
    assert runner.invoke(app, ["batch", str(p), "--out", str(fresh), "-q", "--no-report"]).exit_code == 0
    assert [json.loads(f.read_text())["record"]["train_loss"] for f in _jobs(out)] == \
        [json.loads(f.read_text())["record"]["train_loss"] for f in _jobs(fresh)]


def test_resume_reruns_jobs_of_another_bncli_version(tmp_path, monkeypatch):
    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}])
    out = tmp_path / "out"
    assert runner.invoke(app, ["batch", str(p), "--out", str(out), "-q", "--no-report"]).exit_code == 0
    import bncli

    monkeypatch.setattr(bncli, "__version__", "999.0")
    res = runner.invoke(app, ["batch", str(p), "--out", str(out), "--resume", "--json"])
    doc = json.loads(res.stdout)
    assert doc["counts"]["reused"] == 0 and doc["rerun_reasons"] == {"written by another bncli version": 2}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_at_a_job_path_is_refused_not_read(tmp_path):
    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}])
    out = tmp_path / "out"
    assert runner.invoke(app, ["batch", str(p), "--out", str(out), "-q", "--no-report"]).exit_code == 0
    f = _jobs(out)[0]
    f.unlink()
    os.mkfifo(f)
    res = runner.invoke(app, ["batch", str(p), "--out", str(out), "--resume", "--json", "--dry-run"])
    assert res.exit_code == 0, res.output
    from bncli.batch.expand import expand, load_batch
    from bncli.batch.resume import check_stored
    from bncli.batch.run import entries_of

    jobs = [j for e in entries_of(expand(p, load_batch(p))) for j in e.jobs]
    assert sorted(check_stored(out, j)[1] or "ok" for j in jobs) == ["not a regular file", "ok"]


# ------------------------------------------------------------------ 5: cells that collide


def test_cells_whose_names_coincide_get_their_own_folders(tmp_path):
    p = _batch(tmp_path, [{"name": "m", "spec": "s.yaml", "matrix": {"train.lr": [0.1, 0.1000001]}}])
    out = tmp_path / "out"
    res = runner.invoke(app, ["batch", str(p), "--out", str(out), "--json", "--no-report"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    names = [c["name"] for c in doc["comparisons"]]
    paths = [c["path"] for c in doc["comparisons"]]
    assert len(set(names)) == 2 and len(set(paths)) == 2


# ------------------------------------------------------------------ 6: one writer per folder


def test_a_second_batch_into_a_folder_in_use_is_exit_2(tmp_path):
    from bncli.io import FolderLock

    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}])
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out):  # what the first batch holds while it runs
        res = runner.invoke(app, ["batch", str(p), "--out", str(out)])
    assert res.exit_code == 2 and "in use by another bncli" in res.stderr, res.output
    assert not (out / "jobs").exists()
    assert runner.invoke(app, ["batch", str(p), "--out", str(out), "-q"]).exit_code == 0  # released


# ------------------------------------------------------------------ 7: unbounded matrices


def test_a_matrix_too_large_is_exit_2_before_it_is_expanded(tmp_path):
    axes = {f"train.x{i}": list(range(20)) for i in range(5)}
    p = _batch(tmp_path, [{"name": "big", "spec": "s.yaml", "matrix": axes}])
    res = runner.invoke(app, ["batch", str(p), "--dry-run"])
    assert res.exit_code == 2 and "3,200,000 cells" in res.stderr, res.output


# ------------------------------------------------------------------ 8: dry run checks like a run


@pytest.mark.parametrize("path", ["/dev/zero", "/etc/passwd", "FOLDER"])
def test_dry_run_refuses_data_a_run_refuses(tmp_path, path):
    if path == "/dev/zero" and not Path(path).exists():
        pytest.skip("no /dev/zero")
    path = str(tmp_path) if path == "FOLDER" else path
    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml",
                           "overrides": {"data": {"source": "npz", "path": path}}}])
    res = runner.invoke(app, ["batch", str(p), "--dry-run"])
    assert res.exit_code == 2 and "data.path" in res.stderr, res.output


# ------------------------------------------------------------------ 10: report.md and paths


def test_report_md_escapes_names_and_reads_only_inside_its_folder(tmp_path):
    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}])
    out = tmp_path / "out"
    assert runner.invoke(app, ["batch", str(p), "--out", str(out), "-q", "--no-report"]).exit_code == 0
    doc = json.loads((out / "batch.json").read_text())
    doc["comparisons"][0]["name"] = "x\n```\n# Injected\n<script>alert(1)</script>"
    outside = tmp_path / "outside"
    (outside / "train").mkdir(parents=True)
    (outside / "train" / "summary.json").write_text((out / doc["comparisons"][0]["path"] / "summary.json").read_text())
    doc["comparisons"].append({**doc["comparisons"][0], "name": "far", "path": "../outside/train"})
    (out / "batch.json").write_text(json.dumps(doc))
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    assert "<script>" not in md and "\n# Injected" not in md and "\n```\n# " not in md
    assert "outside" in md and "not read" in md


# ------------------------------------------------------------------ 11: Ray at a closed port


def test_ray_at_an_address_where_nothing_listens_is_one_line_exit_2(tmp_path):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}])
    res = runner.invoke(app, ["batch", str(p), "--backend", "ray", "--address", f"127.0.0.1:{port}"])
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and "cannot reach the Ray cluster" in res.stderr


# ------------------------------------------------------------------ 12: smaller


def test_batch_json_records_the_signal_exit_code(tmp_path):
    import subprocess

    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}], defaults={"seeds": 3})
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "signal_after.py"), "1", "SIGTERM", "batch",
                           str(p), "--jobs", "1", "--out", str(out), "-q", "--no-report"], capture_output=True,
                          text=True)
    assert proc.returncode == 143, proc.stderr
    assert json.loads((out / "batch.json").read_text())["exit_code"] == 143


def _npz_spec(tmp_path: Path, **arrays) -> Path:
    import numpy as np

    f = tmp_path / "d.npz"
    np.savez(f, **arrays)
    d = tiny_spec_dict(**FAST)
    d["data"] = {"source": "npz", "path": str(f)}  # the synthetic sizes would be idle keys
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


@pytest.mark.parametrize("case,needle", [
    ("scalar_y", "single value"), ("no_features", "no features"), ("timedelta", "numeric"),
    ("huge_label", "class labels"),
])
def test_bad_npz_arrays_are_one_line_exit_2(tmp_path, case, needle):
    import numpy as np

    x = np.random.default_rng(0).normal(size=(40, 8))
    y = np.arange(40) % 3
    arrays = {"scalar_y": {"X": x, "y": np.array(1)}, "no_features": {"X": np.zeros((40, 0)), "y": y},
              "timedelta": {"X": x.astype("timedelta64[s]") if False else np.zeros((40, 8), "m8[s]"), "y": y},
              "huge_label": {"X": x, "y": np.where(y == 2, 10**9, y)}}[case]
    res = runner.invoke(app, ["train", str(_npz_spec(tmp_path, **arrays)), "--steps", "2"])
    assert res.exit_code == 2 and needle in res.stderr, res.output
    assert "eta_points" not in res.stderr


def test_an_npz_that_unpacks_too_large_is_refused_from_its_headers(tmp_path, monkeypatch):
    import numpy as np

    import bncli.data.npz as npz

    monkeypatch.setattr(npz, "MAX_ARRAY_BYTES", 1 << 20)  # a 4 GB bomb, scaled down
    spec = _npz_spec(tmp_path, X=np.zeros((2000, 100)), y=np.zeros(2000, int))
    res = runner.invoke(app, ["train", str(spec), "--steps", "2"])
    assert res.exit_code == 2 and "unpack to" in res.stderr, res.output


@pytest.mark.parametrize("value,debug", [("0", False), ("false", False), ("", False), ("1", True)])
def test_bncli_debug_zero_means_off(monkeypatch, value, debug):
    from bncli.commands._common import debug_enabled

    monkeypatch.setenv("BNCLI_DEBUG", value)
    assert debug_enabled() is debug


def test_an_unknown_top_level_batch_key_is_named_against_batch_keys(tmp_path):
    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}], defualts={"seeds": 2})
    res = runner.invoke(app, ["batch", str(p), "--dry-run"])
    assert res.exit_code == 2 and "did you mean 'defaults'" in res.stderr, res.output


def test_a_full_disk_still_prints_the_results_and_says_what_is_missing(tmp_path, monkeypatch):
    import errno

    import bncli.io

    p = _batch(tmp_path, [{"name": "a", "spec": "s.yaml"}])

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bncli.io, "atomic_write_json", full)
    res = runner.invoke(app, ["batch", str(p), "--out", str(tmp_path / "out"), "--json"])
    assert res.exit_code == 1, res.output
    assert json.loads(res.stdout)["kind"] == "batch"
    assert "No space left on device" in res.stderr and "Traceback" not in res.output


def test_a_batch_may_switch_the_source_of_a_spec_but_not_write_idle_keys_itself(tmp_path):
    """An override (or a matrix) that switches data.source leaves the spec file's synthetic sizes
    behind: those pass; a size the batch itself writes next to an npz source is refused."""
    import numpy as np

    f = tmp_path / "d.npz"
    np.savez(f, X=np.random.default_rng(0).normal(size=(40, 8)), y=np.arange(40) % 3)
    ok = _batch(tmp_path, [{"name": "a", "spec": "s.yaml",
                            "matrix": {"data.source": ["synthetic", "npz"]},
                            "overrides": {"data": {"path": str(f)}}}])
    res = runner.invoke(app, ["batch", str(ok), "--dry-run"])
    # the synthetic cell gets data.path, which the batch wrote: refused, naming it
    assert res.exit_code == 2 and "data.path" in res.stderr and "n_samples" not in res.stderr, res.output
    ok2 = _batch(tmp_path, [{"name": "a", "spec": "s.yaml",
                             "overrides": {"data": {"source": "npz", "path": str(f)}}}], name="c.yaml")
    res = runner.invoke(app, ["batch", str(ok2), "--dry-run"])
    assert res.exit_code == 0, res.output
    bad = _batch(tmp_path, [{"name": "a", "spec": "s.yaml",
                             "overrides": {"data": {"source": "npz", "path": str(f), "n_features": 4}}}],
                 name="d.yaml")
    res = runner.invoke(app, ["batch", str(bad), "--dry-run"])
    assert res.exit_code == 2 and "data.n_features" in res.stderr and "n_samples" not in res.stderr, res.output
