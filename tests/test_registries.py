"""A new data source or model family is one module plus one registry line: shown here with a
trivial source (a constant-plus-class data set) and a trivial family (one hidden layer twice as
wide as the input), each written as a module and registered, then run through every subcommand."""

from __future__ import annotations

import sys
import textwrap

import pytest

from bncli.analyses import ANALYSES
from bncli.data import registry as data_registry
from bncli.models import registry as model_registry
from bncli.norms import NORMS, NormInfo, register_norm

SOURCE = '''
"""Two classes: x = class + noise (a trivial source for the registry test)."""
import numpy as np

from bncli.data.base import RawData


def where(spec):
    return "data"


def load(spec, rng):
    y = rng.integers(0, 2, size=spec.n_samples)
    x = y[:, None] + 0.3 * rng.normal(size=(spec.n_samples, spec.n_features))
    return RawData(x, y, task="classification")
'''

FAMILY = '''
"""One hidden layer of twice the input's width (a trivial family for the registry test)."""
import math

LAYERS_FIELD = "model.hidden"
CONV = False


def widths(spec):
    return [8]


def macs_per_example(spec, input_shape, n_out):
    return math.prod(input_shape) * 8 + 8 * n_out


def size(spec, input_shape, n_out):
    return math.prod(input_shape) * 8 + 8 * n_out, 64, 1


def describe(spec, input_shape, n_out):
    return "double: one layer of 8"


def build(spec, arm, input_shape, n_out):
    from torch import nn

    from bncli.models.base import Block, Net

    return Net([Block(nn.Linear(math.prod(input_shape), 8), 8, False, spec.activation, arm, 0)],
               nn.Linear(8, n_out), flatten_input=True)
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    pkg = tmp_path / "myplugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "noisyclass.py").write_text(textwrap.dedent(SOURCE))
    (pkg / "double.py").write_text(textwrap.dedent(FAMILY))
    monkeypatch.syspath_prepend(str(tmp_path))
    sources, families = data_registry.SOURCES.snapshot(), model_registry.FAMILIES.snapshot()
    # the one registry line each
    data_registry.register_source("noisyclass", "myplugins.noisyclass",
                                  fields=("n_samples", "n_features"))
    model_registry.register_family("double", "myplugins.double")
    yield
    data_registry.SOURCES.restore(sources)
    model_registry.FAMILIES.restore(families)
    for m in ("myplugins", "myplugins.noisyclass", "myplugins.double"):
        sys.modules.pop(m, None)


COMMANDS = [a.command for a in ANALYSES.values()]  # every registered analysis, not a hand list


@pytest.mark.parametrize("command", COMMANDS)
def test_a_registered_source_and_family_run_every_subcommand(plugins, tmp_path, command):
    import json

    from typer.testing import CliRunner

    from bncli.cli import app

    spec = tmp_path / "s.yaml"
    spec.write_text(textwrap.dedent("""
        name: plugin
        device: cpu
        data: {source: noisyclass, n_samples: 120, n_features: 4}
        model: {kind: double, activation: relu}
        arms: [plain, batchnorm]
        train: {lr: 0.1, batch_size: 16, steps: 6, eval_every: 3}
        analysis:
          ics: {every: 3}
          lipschitz: {every: 3, eta_points: 3, hessian: false}
          scale: {every: 3}
          saturation: {every: 3}
    """))
    res = CliRunner().invoke(app, [command, str(spec), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {r["arm"] for r in doc["runs"]} == {"plain", "batchnorm"}
    assert all(r["steps_done"] == 6 for r in doc["runs"])


def test_an_unregistered_source_is_a_spec_error(tmp_path):
    from bncli.errors import SpecError
    from bncli.spec import parse_spec

    with pytest.raises(SpecError, match="data.source"):
        parse_spec({"data": {"source": "noisyclass"}})


NORM = '''
"""Centring: x - mean over the layer's units, per example (a trivial norm for the registry test)."""


def build(arm, width, conv):
    from torch import nn

    class Centre(nn.Module):
        def forward(self, x):
            return x - x.mean(dim=tuple(range(1, x.dim())), keepdim=True)

    return Centre()
'''


@pytest.fixture
def centre_norm(tmp_path, monkeypatch):
    pkg = tmp_path / "mynorms"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "centre.py").write_text(textwrap.dedent(NORM))
    monkeypatch.syspath_prepend(str(tmp_path))
    before = NORMS.snapshot()
    from mynorms.centre import build

    # the one registration line: its facts on its entry (no mean-removing bias cancel claims etc.)
    register_norm(NormInfo("centre", "centring", True, False, False, False, False, build, abbrev="C",
                           over="the layer's units", per_example=True, has_eps=False,
                           presets={"centred": {}}))
    yield
    NORMS.restore(before)
    for m in ("mynorms", "mynorms.centre"):
        sys.modules.pop(m, None)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_registered_norm_runs_every_subcommand(centre_norm, tmp_path, command):
    import json

    from typer.testing import CliRunner

    from bncli.cli import app

    spec = tmp_path / "s.yaml"
    spec.write_text(textwrap.dedent("""
        name: norm
        device: cpu
        data: {source: synthetic, n_samples: 120, n_features: 4}
        model: {kind: mlp, hidden: [6, 6]}
        arms: [plain, batchnorm, centred]
        train: {lr: 0.1, batch_size: 16, steps: 6, eval_every: 3}
        analysis:
          ics: {every: 3}
          lipschitz: {every: 3, eta_points: 3, hessian: false}
          scale: {every: 3}
          saturation: {every: 3}
    """))
    res = CliRunner().invoke(app, [command, str(spec), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {r["arm"] for r in doc["runs"]} == {"plain", "batchnorm", "centred"}


def test_registries_share_one_generic_registry():
    from bncli.analyses import CLAIMS
    from bncli.probes.registry import PROBES
    from bncli.registry import Registry
    from bncli.spec_analysis import SECTIONS

    for reg in (data_registry.SOURCES, model_registry.FAMILIES, NORMS, PROBES, ANALYSES, CLAIMS, SECTIONS):
        assert isinstance(reg, Registry)
    with pytest.raises(KeyError, match="known: none, batch"):
        NORMS.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_norm(NORMS.get("batch"))


def test_an_idx_data_set_is_one_registration(tmp_path):
    """EMNIST letters (26 classes, labels 1..26, its own file names) is data: one idx_source line."""
    import numpy as np
    from image_files import write_idx

    from bncli.api import run

    files = {"x": "emnist-letters-train-images-idx3-ubyte", "y": "emnist-letters-train-labels-idx1-ubyte",
             "x_test": "emnist-letters-test-images-idx3-ubyte", "y_test": "emnist-letters-test-labels-idx1-ubyte"}
    folder = tmp_path / "EMNIST" / "raw"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 52), ("test", 26)):
        write_idx(folder / files["x" if split == "train" else "x_test"], rng.integers(0, 256, (n, 8, 8)))
        write_idx(folder / files["y" if split == "train" else "y_test"], np.arange(n) % 26 + 1)
    before = data_registry.SOURCES.snapshot()
    data_registry.register_source(data_registry.idx_source(
        "emnist_letters", "emnist_letters (26 letters)", "EMNIST", "https://www.nist.gov/itl/products-and-services/emnist-dataset",
        n_classes=26, files=files, label_offset=1))
    try:
        res = run("train", {"name": "e", "device": "cpu", "data": {"source": "emnist_letters", "root": str(tmp_path)},
                            "model": {"kind": "mlp", "hidden": [8]}, "arms": ["plain"],
                            "train": {"steps": 2, "eval_every": 1, "batch_size": 8}})
        assert res.runs[0].steps_done == 2
        from bncli.data.mnist import load
        from bncli.spec import DataSpec

        raw = load(DataSpec(source="emnist_letters", root=tmp_path), np.random.default_rng(0))
        assert raw.n_classes == 26 and int(raw.y.min()) == 0 and int(raw.y.max()) == 25
    finally:
        data_registry.SOURCES.restore(before)
