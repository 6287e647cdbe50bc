"""Shared test setup: fixed Rich width, one thread, a tiny spec factory."""

from __future__ import annotations

import os

os.environ.setdefault("COLUMNS", "200")
os.environ.setdefault("TERM", "dumb")
os.environ.pop("BNCLI_DEBUG", None)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def tiny_spec_dict(**over):
    """A spec that trains in well under a second: 2-layer MLP on a small synthetic mixture."""
    d = {
        "name": "tiny",
        "seed": 0,
        "device": "cpu",
        "data": {"source": "synthetic", "n_samples": 200, "n_features": 8, "n_classes": 3},
        "model": {"kind": "mlp", "hidden": [16, 12], "activation": "relu"},
        "arms": ["plain", "batchnorm"],
        "train": {"lr": 0.1, "batch_size": 32, "steps": 30, "eval_every": 10},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    return d


@pytest.fixture
def tiny_spec_dict_factory():
    return tiny_spec_dict


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec mapping as YAML and return its path."""
    import yaml

    def _write(d, name="spec.yaml"):
        p = tmp_path / name
        p.write_text(yaml.safe_dump(d, sort_keys=False))
        return p

    return _write


SAVED_SPEC = {  # every subcommand's tiny spec for the saved-results fixture (API, exports, compare, figures)
    "name": "tiny", "seed": 0, "device": "cpu", "threads": 1,
    "data": {"source": "synthetic", "n_samples": 160, "n_features": 6, "n_classes": 3},
    "model": {"kind": "mlp", "hidden": [12, 10, 10], "activation": "relu"},
    "arms": ["plain", "batchnorm"],
    "train": {"lr": [0.1], "batch_size": 32, "steps": 12, "eval_every": 6},
    "analysis": {"ics": {"every": 4}, "lipschitz": {"every": 6}, "scale": {"every": 6},
                 "saturation": {"every": 6}},
}


@pytest.fixture(scope="session")
def saved_results(tmp_path_factory):
    """{name: folder} of real results made once through bncli.run(..., out=): every subcommand,
    plus `lipschitz_tight` (jacobian_tol 1e-12: C5 refuted where `lipschitz` has it supported)."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    import bncli

    root = tmp_path_factory.mktemp("saved")
    runs = {
        "train": ("train", {"train": {**SAVED_SPEC["train"], "lr": [0.1, 0.5]}}, {"figure_format": "pdf"}),
        "measure-ics": ("measure-ics", {}, {"figure_format": "svg", "report": False}),
        "lipschitz": ("lipschitz", {}, {"report": False}),
        "lipschitz_tight": ("lipschitz", {"analysis": {**SAVED_SPEC["analysis"], "lipschitz": {
            "every": 6, "jacobian_tol": 1e-12}}}, {"report": False}),
        "scale-check": ("scale-check", {}, {"report": False}),
        "saturation": ("saturation", {"arms": ["plain", "batchnorm", "batchnorm_noaffine"],
                                      "model": {**SAVED_SPEC["model"], "activation": "sigmoid"}},
                       {"report": False, "figure_size": "column"}),
    }
    out = {}
    for name, (command, change, kw) in runs.items():
        out[name] = root / name
        bncli.run(command, {**SAVED_SPEC, **change}, out=out[name], **kw)
    return out
