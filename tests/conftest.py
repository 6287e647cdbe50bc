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
