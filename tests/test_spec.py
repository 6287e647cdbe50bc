"""Spec loading and validation: good files, each error path, overrides."""

from __future__ import annotations

import pytest

from bncli.errors import SpecError
from bncli.spec import apply_overrides, load_spec, parse_spec


def test_minimal_spec_gets_defaults():
    spec = parse_spec({})
    assert [a.name for a in spec.arms] == ["plain", "batchnorm"]
    assert spec.train.lr == [0.1]
    assert spec.model.hidden == [100, 100, 100]


def test_scalar_lr_becomes_list_and_presets_expand():
    spec = parse_spec({"train": {"lr": 0.5}, "arms": ["plain", "batchnorm_noaffine", "noisy_plain"]})
    assert spec.train.lr == [0.5]
    noaff = spec.arm("batchnorm_noaffine")
    assert noaff.normalized and not noaff.affine
    noisy = spec.arm("noisy_plain")
    assert noisy.noisy and not noisy.normalized and not noisy.is_baseline
    assert spec.arm("plain").is_baseline


def test_custom_arm_mapping():
    spec = parse_spec({"arms": [{"name": "bn_post", "kind": "batchnorm", "position": "post"}]})
    assert spec.arms[0].position == "post"


@pytest.mark.parametrize(
    "raw, field, words",
    [
        ({"model": {"hidden": [10, 0]}}, "model.hidden.1", "greater than 0"),
        ({"modle": {}}, "modle", "unknown key"),
        ({"train": {"lr": -1}}, "train.lr.0", "greater than 0"),
        ({"train": {"steps": "many"}}, "train.steps", "integer"),
        ({"arms": ["plain", "batchnorn"]}, "arms", "unknown arm"),
        ({"arms": ["plain", "plain"]}, "arms", "unique"),
        ({"data": {"source": "npz"}}, "data", "path"),
        ({"model": {"activation": "swish"}}, "model.activation", "relu"),
        ({"analysis": {"lipschitz": {"eta_range": [4, 0.5]}}}, "analysis.lipschitz.eta_range", "low < high"),
    ],
)
def test_bad_specs_name_file_and_field(tmp_path, write_spec, raw, field, words):
    path = write_spec(raw)
    with pytest.raises(SpecError) as ei:
        load_spec(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}: {field}"), msg
    assert words in msg, msg
    assert "\n" not in msg


def test_yaml_syntax_error_gives_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nmodel:\n  hidden: [1, 2\ntrain: {}\n")
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    assert "line" in str(ei.value) and "YAML syntax error" in str(ei.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="directory"):
        load_spec(tmp_path)


def test_top_level_must_be_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(p)


def test_overrides_validate_and_apply():
    spec = parse_spec({})
    new = apply_overrides(spec, {"train.steps": 7, "train.lr": [0.1, 1.0], "arms": "plain,noisy_batchnorm"})
    assert new.train.steps == 7 and new.train.lr == [0.1, 1.0]
    assert [a.name for a in new.arms] == ["plain", "noisy_batchnorm"]
    assert spec.train.steps == 1000  # original untouched
    with pytest.raises(SpecError, match="train.batch_size"):
        apply_overrides(spec, {"train.batch_size": 0})


def test_relative_npz_path_resolves_from_spec(tmp_path, write_spec):
    p = write_spec({"data": {"source": "npz", "path": "d.npz"}})
    spec = load_spec(p)
    assert spec.data.path == (tmp_path / "d.npz").resolve()


def test_sample_configs_are_valid():
    from pathlib import Path

    configs = [c for c in sorted(Path(__file__).parent.parent.glob("sample_configs/*.yaml"))
               if not c.name.startswith(("batch_", "ci_"))]  # batch files, not specs
    assert len(configs) >= 4
    for c in configs:
        load_spec(c)
