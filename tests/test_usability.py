"""Issue 16: threads: auto, the run's header line, --out reuse refused (or --force), spec discovery."""

from __future__ import annotations

import json
import re

import pytest
import torch
from typer.testing import CliRunner

from bncli.cli import app
from bncli.runtime import AUTO_MACS_PER_THREAD, auto_threads, resolve_threads, step_macs
from bncli.spec import ModelSpec, parse_spec

runner = CliRunner()


# --------------------------------------------------------------------------- threads: auto


def test_step_macs_counts_widths_times_fan_in_times_batch():
    mlp = ModelSpec(kind="mlp", hidden=[100, 100, 100])
    assert step_macs(mlp, (64,), 10, 60) == (64 * 100 + 100 * 100 * 2 + 100 * 10) * 60
    cnn = ModelSpec(kind="cnn", channels=[16, 32], pool=True)
    # 8x8 conv (1->16), pool to 4x4, conv (16->32), pool to 2x2, head 32*2*2 -> 10
    per = 1 * 16 * 9 * 64 + 16 * 32 * 9 * 16 + 32 * 4 * 10
    assert step_macs(cnn, (1, 8, 8), 10, 2) == per * 2


def test_auto_is_one_thread_for_small_work_and_more_only_for_large():
    assert auto_threads(1) == 1
    assert auto_threads(AUTO_MACS_PER_THREAD - 1, ceiling=16) == 1
    assert auto_threads(3 * AUTO_MACS_PER_THREAD, ceiling=16) == 3
    assert auto_threads(100 * AUTO_MACS_PER_THREAD, ceiling=2) == 2  # never above the cores
    assert auto_threads(100 * AUTO_MACS_PER_THREAD, ceiling=64) <= 4


def test_every_sample_config_gets_one_thread(sample_config_paths):
    from bncli.data import load_data
    from bncli.spec import load_spec

    for path in sample_config_paths:
        spec = load_spec(path)
        assert spec.threads == "auto"
        data = load_data(spec.data)
        assert resolve_threads(spec, data.input_shape, data.n_out, data.n_train) == 1, path.name


def test_explicit_threads_and_null_are_kept(tiny_spec_dict_factory):
    assert resolve_threads(parse_spec(tiny_spec_dict_factory(threads=3)), (8,), 3, 100) == 3
    assert resolve_threads(parse_spec(tiny_spec_dict_factory(threads=None)), (8,), 3, 100) is None


def test_run_job_resolves_auto_without_changing_the_job_key(tiny_spec_dict_factory):
    from bncli.plan import plan
    from bncli.runner import run_job

    auto = plan(parse_spec(tiny_spec_dict_factory()), "train")[0]
    one = plan(parse_spec(tiny_spec_dict_factory(threads=1)), "train")[0]
    assert auto.spec.threads == "auto" and auto.key == one.key
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run_job(auto)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_header_line_says_how_many_threads(write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory())
    res = runner.invoke(app, ["train", str(p), "--quiet"])
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert first.startswith("bncli train · tiny:"), first
    assert "threads: 1 (auto)" in " ".join(res.stdout.split())
    res = runner.invoke(app, ["train", str(p), "--quiet", "--threads", "2"])
    assert res.exit_code == 0, res.output
    assert "threads: 2" in " ".join(res.stdout.split()) and "(auto)" not in res.stdout
    res = runner.invoke(app, ["train", str(p), "--quiet", "--threads", "auto", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["spec"]["threads"] == "auto"


def test_bad_threads_option_is_a_spec_error(write_spec, tiny_spec_dict_factory):
    res = runner.invoke(app, ["train", str(write_spec(tiny_spec_dict_factory())), "--threads", "many"])
    assert res.exit_code == 2 and "threads" in res.stderr


# --------------------------------------------------------------------------- --out reuse


def _train(p, out, *extra):
    return runner.invoke(app, ["train", str(p), "--out", str(out), "--quiet", *extra])


def test_out_holding_results_is_refused_unless_force(write_spec, tiny_spec_dict_factory, tmp_path):
    p = write_spec(tiny_spec_dict_factory())
    out = tmp_path / "o"
    assert _train(p, out).exit_code == 0
    before = (out / "summary.json").read_text()
    res = runner.invoke(app, ["scale-check", str(p), "--out", str(out), "--quiet"])
    assert res.exit_code == 2, res.output
    assert "already holds results of `bncli train`" in res.stderr and "--force" in res.stderr
    assert (out / "summary.json").read_text() == before  # nothing touched, nothing trained
    res = _train(p, out)  # the same command again: refused too (it would replace the results)
    assert res.exit_code == 2 and "--force" in res.stderr


def test_force_replaces_and_leaves_nothing_stale(write_spec, tiny_spec_dict_factory, tmp_path):
    p = write_spec(tiny_spec_dict_factory())
    out = tmp_path / "o"
    assert _train(p, out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    assert (out / "plots" / "training.png").exists()
    res = runner.invoke(app, ["scale-check", str(p), "--out", str(out), "--quiet", "--force"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "summary.json").read_text())["command"] == "scale-check"
    assert not (out / "plots" / "training.png").exists()  # the train plot is gone
    assert (out / "plots" / "scale.png").exists()
    assert (out / "notes.txt").read_text() == "mine"  # files bncli did not write are kept


def test_out_with_other_files_only_is_fine(write_spec, tiny_spec_dict_factory, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "README").write_text("x")
    assert _train(write_spec(tiny_spec_dict_factory()), out).exit_code == 0


def test_batch_folder_is_refused_by_a_subcommand_and_a_new_batch(write_spec, tiny_spec_dict_factory,
                                                                  tmp_path):
    import yaml

    p = write_spec(tiny_spec_dict_factory())
    b = tmp_path / "b.yaml"
    b.write_text(yaml.safe_dump({"comparisons": [{"name": "c", "spec": str(p), "command": "train"}]}))
    out = tmp_path / "o"
    assert runner.invoke(app, ["batch", str(b), "--jobs", "1", "--out", str(out), "-q"]).exit_code == 0
    res = _train(p, out)
    assert res.exit_code == 2 and "a batch's results" in res.stderr and "--resume" in res.stderr
    res = runner.invoke(app, ["batch", str(b), "--jobs", "1", "--out", str(out), "-q"])
    assert res.exit_code == 2, res.output
    res = runner.invoke(app, ["batch", str(b), "--jobs", "1", "--out", str(out), "-q", "--resume"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["batch", str(b), "--jobs", "1", "--out", str(out), "-q", "--resume", "--force"])
    assert res.exit_code == 2, res.output
    res = _train(p, out, "--force")
    assert res.exit_code == 0, res.output
    assert not (out / "batch.json").exists() and not (out / "jobs").exists()
    assert not (out / "c").exists()  # the batch's comparison folder went with it


@pytest.fixture
def sample_config_paths():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "sample_configs"
    return [p for p in sorted(root.glob("*.yaml")) if not p.name.startswith(("batch_", "ci_"))]


# --------------------------------------------------------------------------- tables at 100 columns

BOX = {chr(c) for c in range(0x2500, 0x2580)}
COMMANDS = {  # command: (extra options, a word only --detail prints)
    "train": ((), "note:"),
    "measure-ics": ((), "layer1"),
    "lipschitz": (("--hessian",), "Thm 4.1"),
    "scale-check": ((), "static check"),
    "saturation": ((), "layer1"),
}


def _words(text: str) -> set[str]:
    text = re.sub(r"took [\d.]+ s \(median of \d+, max [\d.]+ s\)", "", " ".join(text.split()))  # timing
    text = re.sub(r"not shown at \d+ columns: .*? \(--json has them\)", "", text)  # a narrow terminal's note
    clean = "".join(" " if ch in BOX else ch for ch in text)
    return {w for w in clean.split() if not w.startswith("(continued") and not re.fullmatch(r"\d+/\d+\)", w)}


def _run_at(p, command, extra, columns, *more):
    res = runner.invoke(app, [command, str(p), "--quiet", *extra, *more], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.mark.parametrize("command", list(COMMANDS))
def test_tables_fit_100_columns_and_never_split_a_number(command, write_spec, tiny_spec_dict_factory):
    from rich.cells import cell_len

    d = tiny_spec_dict_factory(arms=["plain", "batchnorm", "batchnorm_noaffine"], seeds=2,
                               train={"steps": 20, "eval_every": 10},
                               analysis={k: {"every": 10} for k in ("ics", "lipschitz", "scale", "saturation")})
    p = write_spec(d)
    extra, detail_word = COMMANDS[command]
    for more in ((), ("--detail",)):
        narrow = _run_at(p, command, extra, 100, *more)
        wide = _run_at(p, command, extra, 1000, *more)
        long = [ln for ln in narrow.splitlines() if cell_len(ln.rstrip()) > 100]
        assert not long, f"{command} {more}: {len(long)} lines over 100 columns, e.g. {long[0]!r}"
        # a word or number cut in two ("6.33e+0⏎0", "batchn⏎orm") leaves pieces the same output
        # printed 1000 columns wide does not have
        pieces = _words(narrow) - _words(wide)
        assert not pieces, f"{command} {more}: split words or numbers: {sorted(pieces)[:10]}"
        assert ("(rel. diff, p)" not in narrow) and ", p)" not in narrow  # 2 seeds: no p-values
        if more:
            assert detail_word in narrow and "Evidence" in narrow  # every metric of every claim
        else:
            assert detail_word not in narrow, f"{command}: {detail_word!r} printed without --detail"
            # issue 32: the answer first (one row per claim), the evidence under --detail
            assert len(narrow.splitlines()) <= 40, f"{command}: {len(narrow.splitlines())} lines by default"
            assert "Evidence" not in narrow


# --------------------------------------------------------------------------- spec discovery


def test_spec_defaults_loads_back_as_the_default_spec():
    import yaml

    from bncli.spec import Spec

    res = runner.invoke(app, ["spec", "--defaults"])
    assert res.exit_code == 0, res.output
    assert parse_spec(yaml.safe_load(res.stdout)) == Spec()
    assert runner.invoke(app, ["spec"]).stdout == res.stdout  # --defaults is the default
    lines = res.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 100
    # every key of every model is there, each with a comment where it is set
    for key in ("tracked_units", "probe_size", "jacobian_units", "eval_train_examples",
                "min_seeds_for_test", "bn_mode", "eta_spacing", "class_sep", "threads"):
        line = next(ln for ln in lines if ln.lstrip("# ").startswith(f"{key}:"))
        assert " # " in line, line
    class_sep = next(ln for ln in lines if ln.strip().startswith("class_sep:"))
    assert "synthetic" in class_sep  # which data source a field is for
    assert any(ln.startswith("#   norm: none") for ln in lines)  # an arm mapping's keys


def test_spec_schema_validates_every_sample_config_and_catches_mistakes(sample_config_paths):
    jsonschema = pytest.importorskip("jsonschema")
    from bncli.yamlio import load_yaml_file

    res = runner.invoke(app, ["spec", "--schema"])
    assert res.exit_code == 0, res.output
    schema = json.loads(res.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in sample_config_paths:
        errors = [e.message for e in validator.iter_errors(json.loads(json.dumps(load_yaml_file(path))))]
        assert not errors, f"{path.name}: {errors}"
    bad = {"model": {"hiden": [10], "hidden": [0]}, "train": {"optimizer": "adom"}, "threads": 0}
    assert len(list(validator.iter_errors(bad))) >= 4


def test_spec_options_conflict():
    assert runner.invoke(app, ["spec", "--defaults", "--schema"]).exit_code == 2


def test_options_that_do_nothing_are_errors_only_when_set():
    from bncli.errors import SpecError

    with pytest.raises(SpecError, match="train: momentum: not used with optimizer: adam"):
        parse_spec({"train": {"optimizer": "adam", "momentum": 0.9}})
    with pytest.raises(SpecError, match="model: init_std: not used with init: xavier"):
        parse_spec({"model": {"init": "xavier", "init_std": 0.5}})
    parse_spec({"train": {"optimizer": "adam"}})  # the default momentum is not the user's
    parse_spec({"train": {"optimizer": "adam", "momentum": 0.0}})  # set, but to what adam does anyway
    parse_spec({"model": {"init": "normal", "init_std": 0.5}})
    # a whole spec dumped and loaded again (a run's job, spec.yaml) sets every key: still fine
    from bncli.spec import Spec

    Spec.model_validate(parse_spec({"train": {"optimizer": "adam"}}).model_dump(mode="json"))


def test_unknown_key_points_to_spec_defaults(write_spec, tiny_spec_dict_factory):
    res = runner.invoke(app, ["validate", str(write_spec(tiny_spec_dict_factory(model={"hiden": [4]})))])
    assert res.exit_code == 2 and "did you mean 'hidden'?" in res.stderr
    assert "bncli spec --defaults" in res.stderr


def test_train_table_says_what_the_final_train_loss_is(write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory(train={"steps": 25, "eval_every": 10}))
    res = runner.invoke(app, ["train", str(p), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "final train loss (mean, last 5 steps)" in " ".join(res.stdout.split())
