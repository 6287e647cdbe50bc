"""Every bad input is one line naming the file and field, exit 2, no traceback (issue 14)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bncli import budget
from bncli.cli import app
from bncli.data import load_data
from bncli.errors import DataError, DeviceError, SpecError
from bncli.runtime import resolve_device
from bncli.spec import DataSpec, apply_overrides, load_spec, parse_spec
from bncli.yamlio import MAX_BYTES, load_yaml_file, load_yaml_text

runner = CliRunner()


def _write(tmp_path, text: str, name: str = "s.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _one_line_exit_2(result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    err = result.stderr.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


# --------------------------------------------------------------------------- 1: numbers


def test_exponent_numbers_load_as_floats():
    doc = load_yaml_text(
        "a: 1e-3\nb: 3E+2\nc: 1e5\nd: -.5\ne: +2.5e-1\nf: 1_000\ng: 0x10\nh: '1e3'\ni: .inf\nj: 1.0\n",
        "t.yaml",
    )
    assert doc["a"] == 1e-3 and doc["b"] == 300.0 and doc["c"] == 1e5 and doc["d"] == -0.5
    assert doc["e"] == 0.25 and doc["j"] == 1.0
    assert all(isinstance(doc[k], float) for k in "abcdej")
    assert doc["f"] == 1000 and doc["g"] == 16 and isinstance(doc["f"], int)  # ints stay ints
    assert doc["h"] == "1e3"  # a quoted string stays a string
    assert doc["i"] == math.inf


def test_lr_written_like_users_write_it(tmp_path):
    p = _write(tmp_path, "train:\n  lr: 1e-3\n  steps: 1e3\n  weight_decay: 5e-4\n")
    spec = load_spec(p)
    assert spec.train.lr == [1e-3] and spec.train.steps == 1000 and spec.train.weight_decay == 5e-4
    spec = load_spec(_write(tmp_path, "train: {lr: [1e-2, 1E-1, 1]}\n", "b.yaml"))
    assert spec.train.lr == [0.01, 0.1, 1.0]


def test_python_tags_are_still_refused(tmp_path):
    p = _write(tmp_path, 'name: !!python/object/apply:os.system ["echo hi"]\n')
    with pytest.raises(SpecError, match=r"unsupported YAML tag !!python/object/apply:os.system"):
        load_spec(p)


@pytest.mark.parametrize(
    "text, words",
    [
        ("name: x\ndata: {seed: 2024-13-45}\n", "line 2, column 14: invalid !!timestamp value '2024-13-45'"),
        ("train: {steps: !!int many}\n", "line 1, column 16: invalid !!int value 'many'"),
        ("seed: !!timestamp 2024-01-01x\n", "invalid !!timestamp value"),
        ("seed: *nowhere\n", "YAML syntax error: found undefined alias"),
        ("train: {lr: !!float }\n", "invalid !!float value ''"),
    ],
)
def test_unreadable_scalars_are_clean_errors(tmp_path, text, words):
    p = _write(tmp_path, text)
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    assert str(ei.value).startswith(f"{p}: ") and words in str(ei.value), str(ei.value)


def test_billion_laughs_is_refused_quickly(tmp_path):
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        rows.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    rows.append("model: {hidden: *i}")
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as ei:
        load_spec(_write(tmp_path, "\n".join(rows) + "\n"))
    assert time.perf_counter() - t0 < 5
    assert "\n" not in str(ei.value) and "model.hidden.0" in str(ei.value)


# --------------------------------------------------------------------------- 2: duplicate keys


def test_duplicate_key_names_key_and_lines(tmp_path):
    p = _write(tmp_path, "name: x\ntrain:\n  lr: 0.1\n  steps: 10\n  lr: 0.5\n")
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    assert str(ei.value) == f"{p}: line 5, column 3: duplicate key 'lr' (first given on line 3)"


def test_duplicate_top_level_key_and_merge_keys(tmp_path):
    with pytest.raises(SpecError, match="duplicate key 'model'"):
        load_spec(_write(tmp_path, "model: {hidden: [3]}\nmodel: {hidden: [4]}\n"))
    # a merge key followed by an override is not a duplicate
    doc = load_yaml_text("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\n", "m.yaml")
    assert doc["use"] == {"x": 1, "y": 3}


# --------------------------------------------------------------------------- 3: size and depth


def test_huge_file_is_refused_up_front(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text("train:\n  lr: [" + ", ".join(["0.1"] * (MAX_BYTES // 5 + 10)) + "]\n")
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match="too large for a spec"):
        load_spec(p)
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(SpecError, match="too large for a spec"):
        load_yaml_text("x" * (MAX_BYTES + 1), "text")


def test_deep_nesting_is_a_clean_error(tmp_path):
    p = _write(tmp_path, "a: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(SpecError, match=r"line 1, column \d+: nested deeper than"):
        load_spec(p)
    block = "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v: 1\n"
    with pytest.raises(SpecError, match="nested deeper than"):
        load_spec(_write(tmp_path, block, "block.yaml"))
    result = runner.invoke(app, ["validate", str(p)])
    _one_line_exit_2(result, str(p), "nested deeper")


def test_binary_file_is_a_clean_error(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(SpecError, match="not a UTF-8 text file"):
        load_yaml_file(p)


# --------------------------------------------------------------------------- 4: ranges


@pytest.mark.parametrize(
    "text, field",
    [
        ("model: {hidden: [1e23]}", "model.hidden.0"),
        ("model: {hidden: [1e6]}", "model.hidden.0"),
        ("model: {hidden: [1000000]}", "model.hidden.0"),
        ("model: {hidden: [100000000000000000000000]}", "model.hidden.0"),
        ("model: {channels: [100000], kind: cnn}", "model.channels.0"),
        ("seed: 1e26", "seed"),
        ("seed: 100000000000000000000000000000", "seed"),
        ("seed: -1", "seed"),
        ("data: {seed: 1e26}", "data.seed"),
        ("seed: 9223372036854775806\nseeds: 3", "seeds"),
        ("data: {source: synthetic, n_samples: 1e12}", "data.n_samples"),
        ("data: {source: synthetic, n_samples: 1000000000000}", "data.n_samples"),
        ("train: {steps: 1e12}", "train.steps"),
        ("train: {batch_size: 1e7}", "train.batch_size"),
        ("seeds: 1e9", "seeds"),
        ("threads: 1e6", "threads"),
        ("analysis: {ics: {probe_size: 1e9}}", "analysis.ics.probe_size"),
        ("analysis: {lipschitz: {eta_points: 1e9}}", "analysis.lipschitz.eta_points"),
    ],
)
def test_out_of_range_values_name_the_field(tmp_path, text, field):
    p = _write(tmp_path, text + "\n")
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}: {field}"), msg
    assert "\n" not in msg


def test_out_of_range_through_cli_fails_fast(tmp_path):
    p = _write(tmp_path, "model: {hidden: [1e6]}\n")
    t0 = time.perf_counter()
    _one_line_exit_2(runner.invoke(app, ["validate", str(p)]), "model.hidden.0", "65536")
    assert time.perf_counter() - t0 < 5


def test_whole_floats_are_accepted_for_counts():
    spec = parse_spec({"train": {"steps": 2e3, "batch_size": 64.0}, "model": {"hidden": [1e2]}})
    assert spec.train.steps == 2000 and spec.model.hidden == [100]
    assert isinstance(spec.model.hidden[0], int)
    with pytest.raises(SpecError, match="fractional part"):
        parse_spec({"train": {"steps": 10.5}})


def test_synthetic_size_is_checked_before_allocating(monkeypatch):
    spec = DataSpec(source="synthetic", n_samples=10_000_000, n_features=1_000_000)
    with pytest.raises(SpecError, match=r"data\.n_samples: the synthetic data would need about"):
        load_data(spec)  # 80 TB: refused before a single draw
    monkeypatch.setattr(budget, "available_bytes", lambda device=None: 1 << 20)
    with pytest.raises(SpecError, match="1 MiB free"):
        load_data(DataSpec(source="synthetic", n_samples=100_000, n_features=100))
    monkeypatch.setattr(budget, "available_bytes", lambda device=None: None)  # unknown: no check
    assert load_data(DataSpec(source="synthetic", n_samples=100, n_features=3)).n_train == 80


def test_budget_estimate_grows_with_the_spec():
    small = parse_spec({"model": {"hidden": [10]}})
    wide = parse_spec({"model": {"hidden": [4096, 4096]}})
    e_small = budget.estimate_bytes(small, (64,), 10, 1400, 360)
    e_wide = budget.estimate_bytes(wide, (64,), 10, 1400, 360)
    assert 0 < e_small < e_wide
    # 4096 x 4096 float32 weights alone are 64 MiB per model; 3 models x (param, grad, copy...)
    assert e_wide > 3 * 4 * 4096 * 4096 * 4
    more_data = budget.estimate_bytes(small, (64,), 10, 1_400_000, 360_000)
    assert more_data - e_small >= (1_400_000 + 360_000 - 1760) * 64 * 4
    adam = parse_spec({"model": {"hidden": [4096, 4096]}, "train": {"optimizer": "adam"}})
    assert budget.estimate_bytes(adam, (64,), 10, 1400, 360) > e_wide
    parts = budget.estimate_parts(small, (64,), 10, 1400, 360, analyses=["ics"])
    assert [p[0] for p in parts][-1] == "measure-ics probes"
    assert budget.estimate_bytes(small, (64,), 10, 1400, 360, analyses=[]) < e_small
    cnn = parse_spec({"model": {"kind": "cnn", "channels": [16, 32]}})
    assert budget.estimate_bytes(cnn, (1, 8, 8), 10, 1400, 360) > 0


def test_check_budget_names_the_likely_field():
    wide = parse_spec({"model": {"hidden": [60000, 60000]}})
    with pytest.raises(SpecError) as ei:
        budget.check_budget(wide, (64,), 10, 1400, 360, available=8 << 30)
    msg = str(ei.value)
    assert msg.startswith("model.hidden: this spec would need about")
    assert "8.0 GiB free" in msg and "\n" not in msg
    many = parse_spec({"data": {"source": "synthetic", "n_samples": 9_000_000, "n_features": 1000},
                       "model": {"hidden": [10]}})
    with pytest.raises(SpecError, match=r"^data\.n_samples: "):
        budget.check_budget(many, (1000,), 10, 7_200_000, 1_800_000, available=4 << 30)
    batch = parse_spec({"train": {"batch_size": 1_000_000}, "model": {"hidden": [4096] * 4}})
    with pytest.raises(SpecError, match=r"^train\.batch_size: "):
        budget.check_budget(batch, (64,), 10, 1_000_000, 100, available=16 << 30, analyses=[])
    small = parse_spec({})
    need = budget.check_budget(small, (64,), 10, 1400, 360, available=8 << 30)
    assert 0 < need < 1 << 30


def test_check_budget_measures_this_machine(monkeypatch):
    free = budget.available_bytes()
    assert free is None or free > 0
    monkeypatch.setattr(budget, "available_bytes", lambda device=None: 1 << 30)
    with pytest.raises(SpecError, match="this machine has 1.0 GiB free"):
        budget.check_budget(parse_spec({"model": {"hidden": [30000, 30000]}}), (64,), 10, 1400, 360)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_check_budget_on_cuda_uses_the_device_memory():
    free = budget.available_bytes("cuda")
    assert free == torch.cuda.mem_get_info()[0]
    huge = parse_spec({"model": {"hidden": [65536] * 8}})
    with pytest.raises(SpecError, match="the GPU cuda"):
        budget.check_budget(huge, (64,), 10, 1400, 360, device="cuda")


# --------------------------------------------------------------------------- 5: inf, nan, booleans


@pytest.mark.parametrize(
    "text, field",
    [
        ("train: {lr: .inf}", "train.lr.0"),
        ("train: {lr: [0.1, .nan]}", "train.lr.1"),
        ("train: {lr: 1e400}", "train.lr.0"),  # overflows to inf while parsing
        ("train: {weight_decay: .inf}", "train.weight_decay"),
        ("train: {target_loss: .inf}", "train.target_loss"),
        ("train: {divergence_factor: .inf}", "train.divergence_factor"),
        ("data: {class_sep: .inf}", "data.class_sep"),
        ("model: {init_std: .nan}", "model.init_std"),
        ("analysis: {lipschitz: {eta_range: [0.5, .inf]}}", "analysis.lipschitz.eta_range.1"),
        ("analysis: {scale: {alphas: [.inf]}}", "analysis.scale.alphas.0"),
        ("arms: [{name: bn, norm: batch, eps: .inf}]", "arms.0.eps"),
        ("arms: [{name: bn, norm: batch, noise: true, noise_params: {n_sigma: .inf}}]",
         "arms.0.noise_params.n_sigma"),
    ],
)
def test_non_finite_floats_are_refused(tmp_path, text, field):
    p = _write(tmp_path, text + "\n")
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    assert str(ei.value).startswith(f"{p}: {field}: Input should be a finite number"), str(ei.value)


def test_validate_json_never_prints_infinity(tmp_path, write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory(train={"lr": float("inf")}))
    result = runner.invoke(app, ["validate", str(p), "--json", "--no-data"])
    _one_line_exit_2(result, "train.lr.0", "finite")
    assert "Infinity" not in result.output


@pytest.mark.parametrize(
    "text, field",
    [
        ("model: {hidden: [true]}", "model.hidden.0"),
        ("model: {hidden: [16, false]}", "model.hidden.1"),
        ("train: {steps: true}", "train.steps"),
        ("train: {lr: true}", "train.lr"),
        ("train: {momentum: false}", "train.momentum"),
        ("seeds: true", "seeds"),
        ("seed: false", "seed"),
        ("data: {n_samples: true}", "data.n_samples"),
        ("analysis: {ics: {every: true}}", "analysis.ics.every"),
    ],
)
def test_booleans_are_not_numbers(tmp_path, text, field):
    p = _write(tmp_path, text + "\n")
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    assert str(ei.value).startswith(f"{p}: {field}"), str(ei.value)


def test_ints_still_work_for_floats_and_scalar_lr():
    spec = parse_spec({"train": {"lr": 1, "momentum": 0, "divergence_factor": 10}, "data": {"noise": 1}})
    assert spec.train.lr == [1.0] and spec.train.divergence_factor == 10.0
    assert parse_spec({"train": {"lr": 0.1}}).train.lr == [0.1]


# --------------------------------------------------------------------------- 6: devices


@pytest.mark.parametrize("name", ["cpu:3", "cpu:0"])
def test_cpu_index_is_refused(name):
    with pytest.raises(DeviceError, match=r"^device: .*the CPU takes no index"):
        resolve_device(name)
    assert resolve_device("cpu") == torch.device("cpu")


def test_cpu_index_on_the_command_line(write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory())
    result = runner.invoke(app, ["train", str(p), "--device", "cpu:3", "--json"])
    _one_line_exit_2(result, str(p), "device", "cpu:3")
    assert result.stdout == ""


# --------------------------------------------------------------------------- 7: npz files


@pytest.mark.parametrize("path", ['""', '"a\\0b.npz"', '"  "'])
def test_unusable_data_path(tmp_path, path):
    p = _write(tmp_path, f"data: {{source: npz, path: {path}}}\n")
    with pytest.raises(SpecError, match=r"data\.path: give the path of an \.npz file"):
        load_spec(p)


def test_complex_npz_is_refused(tmp_path):
    p = tmp_path / "c.npz"
    rng = np.random.default_rng(0)
    np.savez(p, X=rng.normal(size=(20, 3)) + 1j * rng.normal(size=(20, 3)), y=np.arange(20) % 2)
    with pytest.raises(DataError, match=r"X is complex"):
        load_data(DataSpec(source="npz", path=p))
    np.savez(p, X=rng.normal(size=(20, 3)), y=rng.normal(size=20) * (1 + 1j))
    with pytest.raises(DataError, match=r"y is complex"):
        load_data(DataSpec(source="npz", path=p))


@pytest.mark.parametrize("content", [b"this is a CSV,1,2\n", b"\x93NUMPY\x01\x00v\x00{}", b""])
def test_non_npz_file_says_so(tmp_path, content):
    p = tmp_path / "data.npz"
    p.write_bytes(content)
    with pytest.raises(DataError) as ei:
        load_data(DataSpec(source="npz", path=p))
    msg = str(ei.value)
    assert msg.startswith(f"{p}: data.path: not an .npz file"), msg
    assert "allow_pickle" not in msg


def test_npz_with_object_array(tmp_path):
    p = tmp_path / "o.npz"
    np.savez(p, X=np.array([[1, 2]] * 4, dtype=object), y=np.zeros(4))
    with pytest.raises(DataError, match="holds Python objects"):
        load_data(DataSpec(source="npz", path=p))


def test_finite_in_float64_but_not_in_float32(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    x[:, 1] *= 1e39
    assert np.isfinite(x).all()
    p = tmp_path / "big.npz"
    np.savez(p, X=x, y=np.arange(40) % 2)
    with pytest.raises(DataError) as ei:
        load_data(DataSpec(source="npz", path=p))
    assert str(ei.value).startswith(f"{p}: X is not finite in float32"), str(ei.value)
    q = tmp_path / "bigy.npz"
    np.savez(q, X=rng.normal(size=(40, 3)), y=rng.normal(size=40) * 1e39)
    with pytest.raises(DataError, match=r"y is not finite in float32"):
        load_data(DataSpec(source="npz", path=q, task="regression"))
    r = tmp_path / "bigtest.npz"
    big_test = rng.normal(size=(5, 3))
    big_test[0, 0] = 1e40
    np.savez(r, X=rng.normal(size=(40, 3)), y=np.arange(40) % 2, X_test=big_test, y_test=np.arange(5) % 2)
    with pytest.raises(DataError, match=r"X_test is not finite in float32"):
        load_data(DataSpec(source="npz", path=r))


def test_synthetic_overflow_in_float32_is_a_data_error():
    with pytest.raises(DataError, match=r"data.class_sep or data.noise too large"):
        load_data(DataSpec(source="synthetic", n_samples=50, n_features=3, class_sep=1e300))


# --------------------------------------------------------------------------- 8: npz regression + options


def _regression_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    np.savez(tmp_path / "reg.npz", X=x, y=x @ rng.normal(size=4))
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "device: cpu\ndata: {source: npz, path: reg.npz}\nmodel: {hidden: [8]}\n"
        "train: {steps: 5, eval_every: 5, batch_size: 16, target_loss: 0.5}\n"
    )
    return spec


def test_npz_regression_with_command_line_options(tmp_path):
    p = _regression_npz(tmp_path)
    result = runner.invoke(app, ["train", str(p), "--steps", "3", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["spec"]["data"]["task"] == "auto" and doc["spec"]["train"]["steps"] == 3
    assert json.dumps(doc).count('"regression"') >= 1


def test_task_survives_overrides_and_a_round_trip(tmp_path):
    spec = load_spec(_regression_npz(tmp_path))
    assert spec.data.task == "auto"
    again = apply_overrides(spec, {"train.steps": 2})
    assert load_data(again.data).task == "regression"
    from bncli.spec import Spec

    dumped = Spec.model_validate(json.loads(json.dumps(again.model_dump(mode="json"))))
    assert load_data(dumped.data).task == "regression"
    # synthetic and digits resolve auto to classification, so their dumps are unchanged
    assert parse_spec({}).data.task == "classification"
    assert parse_spec({"data": {"source": "synthetic", "task": "regression"}}).data.task == "regression"


def test_overrides_keep_what_the_user_set_apart_from_defaults(tmp_path):
    spec = load_spec(_write(tmp_path, "train: {lr: 0.5}\narms: [plain, noisy_batchnorm]\n"))
    new = apply_overrides(spec, {"train.steps": 3, "seed": 4, "analysis.ics.every": 2})
    assert new.model_fields_set == {"train", "arms", "seed", "analysis"}
    assert new.train.model_fields_set == {"lr", "steps"} and new.train.lr == [0.5]
    assert new.analysis.model_fields_set == {"ics"} and new.analysis.ics.model_fields_set == {"every"}
    assert new.data.model_fields_set == set() and new.data.task == "classification"
    assert [a.name for a in new.arms] == ["plain", "noisy_batchnorm"] and new.arm("noisy_batchnorm").noise
    assert new.model_dump() == apply_overrides(spec, {"train.steps": 3, "seed": 4,
                                                      "analysis.ics.every": 2}).model_dump()


# --------------------------------------------------------------------------- 9: every problem, one line


def test_every_problem_on_one_line_with_suggestions(tmp_path):
    p = _write(tmp_path, "model:\n  hiden: [10]\ntrain:\n  lr: .inf\n  stepz: 3\nbogus: 1\n")
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(f"{p}: ")
    parts = msg.removeprefix(f"{p}: ").split("; ")
    assert "model.hiden: unknown key (did you mean 'hidden'?)" in parts
    assert "train.stepz: unknown key (did you mean 'steps'?)" in parts
    assert "train.lr.0: Input should be a finite number" in parts
    assert any(x.startswith("bogus: unknown key (valid here: name, seed, seeds") for x in parts)
    assert "bncli validate --help" not in msg


def test_unknown_keys_inside_lists_and_nested_models():
    with pytest.raises(SpecError) as ei:
        parse_spec({"arms": [{"name": "bn", "norm": "batch", "affin": False}],
                    "analysis": {"lipschitz": {"eta_pionts": 3}}}, "x.yaml")
    msg = str(ei.value)
    assert "arms.0.affin: unknown key (did you mean 'affine'?)" in msg
    assert "analysis.lipschitz.eta_pionts: unknown key (did you mean 'eta_points'?)" in msg


def test_many_problems_are_capped_on_one_line():
    with pytest.raises(SpecError) as ei:
        parse_spec({"model": {"hidden": [0] * 100}}, "x.yaml")
    msg = str(ei.value)
    assert msg.count("; ") == 20 and msg.endswith("and 80 more problems") and "\n" not in msg


def test_cli_unknown_key_names_file_and_suggestion(tmp_path):
    p = _write(tmp_path, "model: {hiden: [10]}\n")
    _one_line_exit_2(runner.invoke(app, ["validate", str(p)]),
                     f"error: {p}: model.hiden: unknown key (did you mean 'hidden'?)")
