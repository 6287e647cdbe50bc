"""Issue 30 (first part): nothing written or deleted outside the folders a user names, consent
before a spec's code runs, and the one-line exit 2 where a traceback or exit 1 was."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from bncli.cli import app
from bncli.io import FolderLock

TINY = {"name": "t", "seed": 0, "device": "cpu", "threads": 1,
        "data": {"source": "synthetic", "n_samples": 80, "n_features": 4, "n_classes": 2},
        "model": {"kind": "mlp", "hidden": [6]}, "arms": ["plain", "batchnorm"],
        "train": {"lr": 0.1, "batch_size": 16, "steps": 2, "eval_every": 2}}


def _invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_exit_2(res, *words: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output
    for w in words:
        assert w in res.output, res.output


@pytest.fixture
def spec_file(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(TINY))
    return p


# ----------------------------------------------------------------- 1, 3, 4: links and the lock


@pytest.mark.parametrize("sub", ["plots", "report_files"])
def test_single_command_refuses_a_linked_subfolder(tmp_path, spec_file, sub):
    out, elsewhere = tmp_path / "o3", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "captions.md").write_text("mine")
    (out / sub).symlink_to(elsewhere)
    res = _invoke("train", spec_file, "--out", out, "-q")
    _one_line_exit_2(res, "symbolic link", sub)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["captions.md"]
    assert (elsewhere / "captions.md").read_text() == "mine"


def _batch_file(tmp_path, spec_file):
    p = tmp_path / "b.yaml"
    p.write_text(yaml.safe_dump({"comparisons": [
        {"name": "c1", "spec": str(spec_file), "command": "train"},
        {"name": "c2", "spec": str(spec_file), "command": "train", "overrides": {"train": {"lr": 0.2}}}]}))
    return p


def test_batch_force_refuses_a_linked_comparison_folder_before_deleting(tmp_path, spec_file):
    batch, out, elsewhere = _batch_file(tmp_path, spec_file), tmp_path / "ob", tmp_path / "elsewhere"
    assert _invoke("batch", batch, "--out", out, "-q", "--no-report").exit_code == 0
    elsewhere.mkdir()
    (elsewhere / "summary.json").write_text("{}")
    import shutil

    shutil.rmtree(out / "c2")
    (out / "c2").symlink_to(elsewhere)
    before = sorted(p.name for p in out.rglob("*"))
    res = _invoke("batch", batch, "--out", out, "--force", "-q")
    _one_line_exit_2(res, "symbolic link", "c2")
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing removed, nothing trained
    assert (elsewhere / "summary.json").read_text() == "{}"
    # --dry-run says the same, and so does --resume with jobs/ linked outside
    _one_line_exit_2(_invoke("batch", batch, "--out", out, "--force", "--dry-run"), "symbolic link")
    (out / "c2").unlink()
    shutil.move(out / "jobs", tmp_path / "jobs_elsewhere")
    (out / "jobs").symlink_to(tmp_path / "jobs_elsewhere")
    n = len(list((tmp_path / "jobs_elsewhere").iterdir()))
    _one_line_exit_2(_invoke("batch", batch, "--out", out, "--resume", "-q"), "symbolic link", "jobs")
    assert len(list((tmp_path / "jobs_elsewhere").iterdir())) == n


def test_single_command_holds_its_out_folder(tmp_path, spec_file):
    out = tmp_path / "o"
    out.mkdir()
    with FolderLock(out):  # another bncli command writing there
        res = _invoke("train", spec_file, "--out", out, "-q")
    _one_line_exit_2(res, "in use")
    assert not (out / "summary.json").exists()
    import bncli
    from bncli.errors import UsageError

    with FolderLock(out), pytest.raises(UsageError, match="in use"):
        bncli.run("train", str(spec_file), out=str(out))
    assert _invoke("train", spec_file, "--out", out, "-q").exit_code == 0  # free again


# ----------------------------------------------------------------- 11: a spec's code needs consent


@pytest.fixture
def module_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BNCLI_ALLOW_CODE", raising=False)
    (tmp_path / "marker_net.py").write_text(textwrap.dedent('''
        import pathlib
        pathlib.Path("MARKER").write_text("imported")
        from torch import nn

        def build(point, shape, n_out):
            return nn.Sequential(point(nn.Linear(shape[0], 6), 6, conv=False), nn.Linear(6, n_out))
    '''))

    def write(factory: str):
        p = tmp_path / f"m{abs(hash(factory))}.yaml"
        p.write_text(yaml.safe_dump({**TINY, "model": {"kind": "module", "factory": factory}}))
        return p

    return write


def test_a_spec_s_module_is_not_imported_without_consent(tmp_path, module_spec):
    spec = module_spec("marker_net:build")
    batch = tmp_path / "b.yaml"
    batch.write_text(yaml.safe_dump({"comparisons": [{"name": "c", "spec": str(spec), "command": "train"}]}))
    for args in (["validate", spec], ["batch", batch, "--dry-run"], ["train", spec, "-q"]):
        res = _invoke(*args)
        _one_line_exit_2(res, "marker_net", "--allow-code", "BNCLI_ALLOW_CODE=1")
        assert not (tmp_path / "MARKER").exists(), args
    res = _invoke("validate", module_spec("this:x"))
    _one_line_exit_2(res, "'this'")
    assert "Beautiful is better" not in res.output
    import bncli
    from bncli.errors import SpecError

    with pytest.raises(SpecError, match="allow-code"):
        bncli.run("train", str(spec), steps=2)
    assert not (tmp_path / "MARKER").exists()


def test_consent_runs_the_module_and_a_wrong_callable_is_exit_2(tmp_path, module_spec, monkeypatch):
    spec = module_spec("marker_net:build")
    assert _invoke("validate", spec, "--allow-code").exit_code == 0
    assert (tmp_path / "MARKER").exists()
    import os

    assert "BNCLI_ALLOW_CODE" not in os.environ  # consent was for that command only
    monkeypatch.setenv("BNCLI_ALLOW_CODE", "1")
    assert _invoke("validate", spec).exit_code == 0
    for factory in ("os:system", "builtins:exec", "os:getcwd", "marker_net:_private"):
        _one_line_exit_2(_invoke("validate", module_spec(factory)), "model.factory")


def test_api_refuses_bad_option_values():
    import bncli
    from bncli.errors import BncliError

    with pytest.raises(BncliError, match="not a number"):
        bncli.run("train", TINY, lr="abc")
    with pytest.raises(BncliError, match="dask"):
        bncli.run("train", TINY, backend="dask")
    assert json.dumps(TINY)  # the spec itself is fine


# ----------------------------------------------------------------- 2: TensorBoard run names


def _tampered(saved_results, tmp_path, **change):
    import shutil

    folder = tmp_path / "res"
    shutil.copytree(saved_results["train"], folder)
    doc = json.loads((folder / "summary.json").read_text())
    for key, value in change.items():
        if key == "arm":
            for r in doc["runs"]:
                r["arm"] = value
        elif key == "name":
            doc["spec"]["name"] = value
        else:
            doc[key] = value
    (folder / "summary.json").write_text(json.dumps(doc))
    return folder


def _files_outside(root, inside):
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and not p.is_relative_to(inside))


@pytest.mark.parametrize("change", [{"name": "../../escape"}, {"name": "/abs/path"},
                                    {"arm": "../../../../x"}, {"arm": ".."}])
def test_tensorboard_export_stays_inside_logdir(saved_results, tmp_path, change):
    pytest.importorskip("tensorboard")
    folder = _tampered(saved_results, tmp_path, **change)
    root = tmp_path / "root"
    logdir = root / "tb" / "a" / "b"
    # an event file bncli never wrote, where the unsanitised name would lead
    victim = root / "tb" / "escape" / "train" / "plain" / "lr=0.1" / "seed=0"
    victim.mkdir(parents=True)
    (victim / "events.out.tfevents.1.mine").write_text("not bncli's")
    before = _files_outside(root, logdir)
    for extra in ([], ["--force"]):
        res = _invoke("export", "tensorboard", folder, "--logdir", logdir, "-q", *extra)
        assert res.exit_code == 0, res.output
    assert _files_outside(root, logdir) == before
    assert (victim / "events.out.tfevents.1.mine").read_text() == "not bncli's"


def test_tensorboard_bad_logdir_and_long_names_exit_2_before_training(tmp_path, spec_file):
    pytest.importorskip("tensorboard")
    (tmp_path / "afile").write_text("x")
    for logdir in (tmp_path / "afile", tmp_path / "afile" / "sub", "/proc/bncli-test"):
        _one_line_exit_2(_invoke("train", spec_file, "--tensorboard", logdir, "-q"), "--logdir")
    long = tmp_path / "long.yaml"
    long.write_text(yaml.safe_dump({**TINY, "name": "n" * 300}))
    res = _invoke("train", long, "--tensorboard", tmp_path / "tb", "-q")
    _one_line_exit_2(res, "255")
    assert "bncli train" not in res.stdout  # refused before training, not after


def test_tensorboard_full_disk_is_one_line(saved_results, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    import threading

    from tensorboard.summary.writer import record_writer

    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(record_writer.RecordWriter, "write", full)
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args))
    res = _invoke("export", "tensorboard", saved_results["train"], "--logdir", tmp_path / "tb", "-q")
    _one_line_exit_2(res, "No space left on device")
    assert not seen and threading.excepthook is not None


def test_mlflow_long_names_exit_2_before_any_run(saved_results, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    folder = _tampered(saved_results, tmp_path, name="m" * 300)
    store = tmp_path / "mlruns"
    res = _invoke("export", "mlflow", folder, "--tracking-uri", f"file:{store}", "-q")
    _one_line_exit_2(res, "250")
    assert list(store.glob("*/*/meta.yaml")) == []  # no parent run, no job's run


# ----------------------------------------------------------------- 5: pipes and devices; tampered documents


def test_a_named_pipe_or_a_device_is_refused_not_read(saved_results, tmp_path):
    import os
    import threading

    import bncli
    from bncli.errors import UsageError

    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    # a writer, so that a reader that opened the pipe (the defect) gets a document and exits 0
    writer = threading.Thread(target=lambda: fifo.write_text(json.dumps({"schema_version": 1})), daemon=True)
    writer.start()
    try:
        for args in (["compare", saved_results["train"], fifo], ["export", "tensorboard", fifo, "--logdir",
                                                                 tmp_path / "tb", "-q"]):
            _one_line_exit_2(_invoke(*args), "not a regular file")
        with pytest.raises(UsageError, match="not a regular file"):
            bncli.load(fifo)
        _one_line_exit_2(_invoke("compare", saved_results["train"], "/dev/zero"), "not a regular file")
    finally:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # let the writer finish
        writer.join()
        os.close(fd)


@pytest.mark.parametrize("change, field", [
    ({"runs": "x"}, "runs"), ({"spec": "x"}, "spec"), ({"runs": [1]}, "runs[0]"),
    ({"run": {"lr": "fast"}}, "runs[0].lr"), ({"run": {"arm": [1]}}, "runs[0].arm"),
    ({"run": {"steps": [0, "1e400"]}}, "runs[0].steps[1]"), ({"claim": {"verdict": 123}}, "claims[0].verdict"),
])
def test_a_tampered_summary_is_one_line_exit_2(saved_results, tmp_path, change, field):
    import bncli
    from bncli.errors import SchemaError

    folder = _tampered(saved_results, tmp_path)
    doc = json.loads((folder / "summary.json").read_text())
    for key, value in change.items():
        if key == "run":
            doc["runs"][0].update(value)
        elif key == "claim":
            doc["claims"][0].update(value)
        else:
            doc[key] = value
    (folder / "summary.json").write_text(json.dumps(doc).replace('"1e400"', "1e400"))
    for args in (["compare", saved_results["train"], folder], ["report", folder],
                 ["export", "tensorboard", folder, "--logdir", tmp_path / "tb", "-q"]):
        _one_line_exit_2(_invoke(*args), field, "summary.json")
    with pytest.raises(SchemaError, match=field.replace("[", r"\[").replace("]", r"\]")):
        bncli.load(folder)


def test_json_nested_deep_is_one_line_exit_2(saved_results, tmp_path):
    import bncli
    from bncli.errors import SchemaError

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    _one_line_exit_2(_invoke("compare", saved_results["train"], deep), "nested too deep")
    with pytest.raises(SchemaError, match="nested too deep"):
        bncli.load(deep)


# ----------------------------------------------------------------- 6, 7: progress and a fast dry run


def _recording(calls):
    import contextlib

    @contextlib.contextmanager
    def fake(quiet, what, unit):
        def update(**kw):
            calls.append((what, kw))

        yield update

    return fake


def test_dry_run_checks_each_model_once_and_reports_progress(tmp_path, spec_file, monkeypatch):
    import bncli.commands.batch as batch_command
    import bncli.plan
    import bncli.runner.build as build

    batch = tmp_path / "m.yaml"
    batch.write_text(yaml.safe_dump({"comparisons": [{
        "name": "c", "spec": str(spec_file), "command": "train", "overrides": {"seeds": 3},
        "matrix": {"train.lr": [0.01 * (i + 1) for i in range(10)], "train.steps": [2, 3, 4, 5]}}]}))
    built, validated = [], []
    real_build, real_validate = build.build_model, bncli.plan._spec_from_json.__wrapped__
    monkeypatch.setattr(build, "build_model", lambda *a, **k: built.append(1) or real_build(*a, **k))
    bncli.plan._spec_from_json.cache_clear()
    monkeypatch.setattr(bncli.plan, "_spec_from_json", lambda s: validated.append(1) or real_validate(s))
    build._FITS.clear()
    calls: list = []
    monkeypatch.setattr(batch_command, "progress_callback", _recording(calls))
    res = _invoke("batch", batch, "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["jobs"]) == 40 * 3 * 2
    # 40 cells, 240 jobs: one model built to check the fit, no job's spec validated whole
    assert len(built) == 1 and len(validated) == 0, (len(built), len(validated))
    for what in ("checking cells", "listing jobs"):
        assert (what, {"total": 40}) in calls
        assert sum(kw.get("run_done", 0) for w, kw in calls if w == what) == 40


def test_export_reports_progress_by_points(saved_results, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    import bncli.commands.export as export_command
    from bncli.export.series import run_series
    from bncli.saved import load_result

    calls: list = []
    monkeypatch.setattr(export_command, "progress_callback", _recording(calls))
    res = _invoke("export", "tensorboard", saved_results["train"], "--logdir", tmp_path / "tb", "-q")
    assert res.exit_code == 0, res.output
    runs = load_result(saved_results["train"]).runs
    points = sum(len(v) for r in runs for v in run_series(r).values())
    assert ("runs", {"total": len(runs)}) in calls
    assert sum(kw.get("advance", 0) for _, kw in calls) == points > 0
    assert sum(kw.get("run_done", 0) for _, kw in calls) == len(runs)


def test_a_c9_expectation_no_arm_can_meet_is_refused_at_dry_run(tmp_path, spec_file):
    batch = tmp_path / "c9.yaml"
    batch.write_text(yaml.safe_dump({"comparisons": [{
        "name": "c", "spec": str(spec_file), "command": "measure-ics",
        "expect": [{"claim": "C9", "verdict": "supported"}]}]}))
    _one_line_exit_2(_invoke("batch", batch, "--dry-run"), "expect.0.claim", "C9", "lp arm")


# ----------------------------------------------------------------- report.md: user text escaped once


def test_report_markdown_escapes_names_and_notes_once(saved_results, tmp_path):
    from bncli.render.report import build_report
    from bncli.render.report_text import to_markdown

    name = "c1[lr=0.5] `tick` [x](javascript:alert(1))"
    folder = _tampered(saved_results, tmp_path, name=name)
    doc = json.loads((folder / "summary.json").read_text())
    doc["claims"][0]["note"] = "see `this [y](javascript:alert(2)) | cell"
    (folder / "summary.json").write_text(json.dumps(doc))
    md = to_markdown(build_report(folder, jobs=1))
    text, fenced = [], False  # Markdown a reader sees rendered: not the spec's code block, not raw HTML
    for line in md.splitlines():
        fenced ^= line.startswith("```")
        if not fenced and not line.startswith(("```", "<details>", "</details>")):
            text.append(line)
    md = "\n".join(text)
    assert "](javascript:" not in md.replace("\\](javascript:", "")  # no link a reader could click
    assert "c1\\[lr=0.5\\]" in md and "c1\\\\[" not in md  # escaped once, not twice
    assert "\\`tick\\`" in md and "\\`this" in md  # a backtick opens no code span
    header = next(line for line in text if line.startswith("| claim") or line.startswith("| spec"))
    assert header.count("|") >= 3


# ----------------------------------------------------------------- exit 2 and one short line


def test_an_lr_beyond_float32_is_a_spec_error(spec_file):
    _one_line_exit_2(_invoke("train", spec_file, "--lr", "1e300", "-q"), "train.lr", "float32")


def test_a_100000_digit_value_gives_a_short_line(tmp_path, spec_file):
    digits = "9" * 100_000
    spec = tmp_path / "seed.yaml"
    spec.write_text("\n".join(line for line in spec_file.read_text().splitlines() if not line.startswith("seed:"))
                    + f"\nseed: {digits}\n")
    batch = tmp_path / "b.yaml"
    batch.write_text(f"comparisons:\n  - name: c\n    spec: {spec_file}\n    command: train\n"
                     f"    matrix: {{seed: [{digits}]}}\n")
    for args in (["validate", spec], ["batch", batch, "--dry-run"]):
        res = _invoke(*args)
        _one_line_exit_2(res, "characters")
        assert len(res.output) < 1000, len(res.output)


def test_consent_reaches_worker_processes_started_before_it(tmp_path, module_spec):
    from bncli.executors.local import _context

    _context()  # the forkserver starts without consent (as in a long Python session)
    spec = module_spec("marker_net:build")
    batch = tmp_path / "b.yaml"
    batch.write_text(yaml.safe_dump({"comparisons": [{"name": "c", "spec": str(spec), "command": "train"}]}))
    res = _invoke("batch", batch, "--jobs", "2", "--allow-code", "-q", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["counts"]["failed"] == 0 and doc["counts"]["jobs"] == 2, doc["counts"]


def test_the_lock_file_is_removed_when_released(tmp_path, spec_file):
    out = tmp_path / "o"
    assert _invoke("train", spec_file, "--out", out, "-q", "--no-report").exit_code == 0
    assert not (out / ".bncli.lock").exists()
    out2 = tmp_path / "o2"
    out2.mkdir()
    with FolderLock(out2):
        # a second opener that got the old file must not count as holding the folder once it is gone
        with pytest.raises(Exception, match="in use"), FolderLock(out2):
            pass
    assert not (out2 / ".bncli.lock").exists()
    with FolderLock(out2):
        assert (out2 / ".bncli.lock").exists()
