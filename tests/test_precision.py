"""The spec's `precision` (float32 | float64): the data, models, probes and fused stacks follow it,
records say which, it is part of the job key (float32 keys unchanged), torch's default dtype is
restored after a run, and the CLI's --precision / header / `spec --defaults` say it."""

from __future__ import annotations

import json

import pytest
import torch
from image_files import make_mnist
from typer.testing import CliRunner

from bncli.cli import app
from bncli.data import load_data
from bncli.errors import BncliError
from bncli.plan import plan
from bncli.runner.cache import cpu_data, in_precision
from bncli.runner.fused import FusedRunner
from bncli.runner.single import run_job
from bncli.spec import DataSpec, apply_overrides, parse_spec


def _spec(tiny_spec_dict_factory, **over):
    d = tiny_spec_dict_factory(train={"steps": 6, "eval_every": 3, "lr": [0.05, 0.2]}, seeds=2, **over)
    return parse_spec(d)


def test_default_is_float32_and_other_values_are_refused(tiny_spec_dict_factory):
    assert _spec(tiny_spec_dict_factory).precision == "float32"
    with pytest.raises(BncliError, match="precision"):
        _spec(tiny_spec_dict_factory, precision="float16")


def test_precision_is_part_of_the_job_key_and_float32_keys_are_unchanged(tiny_spec_dict_factory):
    spec = _spec(tiny_spec_dict_factory)
    f32 = plan(spec, "train")
    f64 = plan(apply_overrides(spec, {"precision": "float64"}), "train")
    assert all("precision" not in json.loads(j.spec_json) for j in f32)  # the keys of before
    assert not {j.key for j in f32} & {j.key for j in f64}
    assert all(j.spec.precision == "float64" for j in f64)


def test_float64_runs_single_and_fused_in_float64_and_restore_the_default(tiny_spec_dict_factory):
    spec = apply_overrides(_spec(tiny_spec_dict_factory), {"precision": "float64"})
    data = cpu_data(spec)
    assert data.x_train.dtype == torch.float64
    seen = []

    def factory(spec, arm, lr, seed, data):
        seen.append(torch.get_default_dtype())
        return []

    jobs = plan(spec, "train")
    from bncli.runner.single import SingleRunner

    SingleRunner(factory).run(jobs[:1], data)
    assert seen == [torch.float64] and torch.get_default_dtype() == torch.float32
    fused = [r for g in ([j for j in jobs if j.arm == "plain"],) for r in FusedRunner().run(g, data)]
    single = [run_job(j, data) for j in jobs if j.arm == "plain"]
    assert {r.precision for r in fused + single} == {"float64"} and {r.numerics for r in fused} == {"fused"}
    assert torch.get_default_dtype() == torch.float32
    r32 = run_job(plan(apply_overrides(spec, {"precision": "float32"}), "train")[0])
    assert r32.precision == "float32" and r32.train_loss != single[0].train_loss


def test_image_data_in_float64_normalizes_to_float64(tmp_path):
    make_mnist(tmp_path, subdir="")
    d = in_precision(load_data(DataSpec(source="mnist", root=tmp_path)), "float64")
    assert d.x_train.dtype == torch.uint8 and d.y_train.dtype == torch.int64  # bytes and labels stay
    x, _ = d.probe_batch(8)
    assert x.dtype == torch.float64
    assert d.batch(torch.arange(4), 0, 0)[0].dtype == torch.float64


def test_cli_precision_option_header_and_records(write_spec, tiny_spec_dict_factory):
    path = write_spec(tiny_spec_dict_factory(train={"steps": 4, "eval_every": 2}))
    res = CliRunner().invoke(app, ["train", str(path), "--precision", "float64", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {r["precision"] for r in doc["runs"]} == {"float64"}
    res = CliRunner().invoke(app, ["train", str(path), "--precision", "float64"])
    assert res.exit_code == 0, res.output
    assert "float64" in res.output.splitlines()[0] + res.output.splitlines()[1]
    res = CliRunner().invoke(app, ["spec", "--defaults"])
    assert res.exit_code == 0 and "precision: float32" in res.stdout


def test_the_memory_estimate_counts_float64_twice(tiny_spec_dict_factory):
    from bncli.budget import estimate_bytes

    spec = _spec(tiny_spec_dict_factory)
    f64 = apply_overrides(spec, {"precision": "float64"})
    args = ((8,), 3, 160, 40)
    assert estimate_bytes(f64, *args) == 2 * estimate_bytes(spec, *args)
