"""VGG and ResNet families: named points, identical init across arms, every norm, and every
analysis through the real CIFAR loader (tiny files, tiny widths, a few steps)."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from image_files import make_cifar, make_mnist
from typer.testing import CliRunner

from bncli.cli import app
from bncli.data import load_data
from bncli.models import build_model
from bncli.models.registry import point_names, widths
from bncli.runner.build import build_arm_model, initial_model
from bncli.spec import ArmSpec, DataSpec, ModelSpec, parse_spec

ANALYSES = ["train", "measure-ics", "lipschitz", "scale-check", "saturation"]
MODELS = {"vgg": {"kind": "vgg", "depth": 11, "width": 4},
          "resnet": {"kind": "resnet", "depth": 20, "width": 4}}


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    return make_cifar(tmp_path_factory.mktemp("cifar"), per_batch=8, n_test=8)


def _spec(root, model, **train):
    return {
        "name": "papers-test", "device": "cpu", "seed": 0,
        "data": {"source": "cifar10", "root": str(root), "augment": True},
        "model": model,
        "arms": ["plain", "batchnorm", "noisy_batchnorm"],
        "train": {"lr": 0.05, "momentum": 0.9, "batch_size": 8, "steps": 3, "eval_every": 3,
                  "schedule": "cosine", "warmup_steps": 1, **train},
        "analysis": {"ics": {"every": 2, "probe_size": 8, "tracked_units": 2},
                     "lipschitz": {"every": 2, "eta_points": 2, "jacobian_units": 2,
                                   "jacobian_rows": 16},
                     "scale": {"every": 2, "probe_size": 8, "alphas": [0.1, 10.0]},
                     "saturation": {"every": 2, "probe_size": 8}},
    }


@pytest.mark.parametrize("family", ["vgg", "resnet"])
@pytest.mark.parametrize("command", ANALYSES)
def test_every_analysis_runs_on_vgg_and_resnet(cifar_root, write_spec, family, command):
    path = write_spec(_spec(cifar_root, MODELS[family]))
    res = CliRunner().invoke(app, [command, str(path), "--json", "--threads", "1"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    records = doc.get("runs")
    if records:
        assert len(records[0]["lr_curve"]) == len(records[0]["steps"])


@pytest.mark.parametrize("family", ["vgg", "resnet"])
def test_points_named_in_forward_order_and_identical_init(cifar_root, family):
    spec = parse_spec(_spec(cifar_root, MODELS[family]))
    data = load_data(spec.data)
    names = point_names(spec.model)
    init = initial_model(spec, data, 0)
    assert init.point_names == names == [f"layer{i + 1}" for i in range(len(names))]
    for norm in ("none", "batch", "layer", "group", "weight", "lp"):
        arm = ArmSpec(name=norm, norm=norm, groups=2)
        net = build_arm_model(spec, arm, init, data, 0)
        for n in names:
            w_init = init.block(n).weight_module.weight
            assert torch.allclose(net.block(n).weight_module.weight, w_init, atol=1e-6), (norm, n)
        out = net(data.probe_batch(8)[0])
        assert out.shape == (8, 10) and torch.isfinite(out).all()


def test_depths_and_widths():
    assert len(widths(ModelSpec(kind="vgg", depth=16))) == 13
    assert len(widths(ModelSpec(kind="resnet", depth=56))) == 57  # 55 convs + 2 projections
    assert len(widths(ModelSpec(kind="resnet", depth=18))) == 20
    with pytest.raises(Exception, match="depth: a vgg has depth 11, 13, 16"):
        ModelSpec(kind="vgg", depth=19)
    with pytest.raises(Exception, match="depth: not used with kind: mlp"):
        ModelSpec(kind="mlp", depth=11)


def test_mlp_flattens_mnist(tmp_path, write_spec):
    make_mnist(tmp_path)
    path = write_spec({"device": "cpu", "data": {"source": "mnist", "root": str(tmp_path)},
                       "model": {"kind": "mlp", "hidden": [8, 8], "activation": "sigmoid"},
                       "train": {"batch_size": 8, "steps": 2, "eval_every": 2,
                                 "schedule": "step", "milestones": [1], "gamma": 0.5}})
    res = CliRunner().invoke(app, ["train", str(path), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["runs"][0]["lr_curve"] == [0.1, 0.05]


def test_user_module_factory(tmp_path, monkeypatch, write_spec):
    (tmp_path / "mynet.py").write_text(textwrap.dedent('''
        from torch import nn

        class Net(nn.Module):
            def __init__(self, point, shape, n_out):
                super().__init__()
                self.a = point(nn.Conv2d(shape[0], 4, 3, padding=1), 4)
                self.b = point(nn.Conv2d(4, 4, 3, padding=1), 4, activation="linear")
                self.out = nn.Linear(4, n_out)

            def forward(self, x):
                h = self.a(x)
                h = (self.b(h) + h).relu()
                return self.out(h.mean((2, 3)))

        def build(point, shape, n_out):
            return Net(point, shape, n_out)
    '''))
    monkeypatch.chdir(tmp_path)
    make_cifar(tmp_path / "data")
    spec = _spec(tmp_path / "data", {"kind": "module", "factory": "mynet:build"})
    for command in ("measure-ics", "scale-check"):  # a spec's code runs with consent only
        res = CliRunner().invoke(app, [command, str(write_spec(spec)), "--json", "--allow-code"])
        assert res.exit_code == 0, res.output
    bad = write_spec({**spec, "model": {"kind": "module", "factory": "nosuch:build"}})
    res = CliRunner().invoke(app, ["train", str(bad), "--allow-code"])
    assert res.exit_code == 2 and "model.factory" in res.output


def test_schedules():
    from bncli.schedule import lr_at
    from bncli.spec import TrainSpec

    cos = TrainSpec(steps=10, schedule="cosine", warmup_steps=2)
    assert [round(lr_at(cos, 1.0, s), 3) for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 0.038]
    step = TrainSpec(steps=10, schedule="step", milestones=[3, 6], gamma=0.1)
    assert [lr_at(step, 1.0, s) for s in (2, 3, 6)] == [1.0, 0.1, pytest.approx(0.01)]
    with pytest.raises(Exception, match="milestones"):
        TrainSpec(schedule="step")
    with pytest.raises(Exception, match="gamma: not used"):
        TrainSpec(gamma=0.5)


def test_data_spec_checks(tmp_path):
    with pytest.raises(Exception, match="augment: crop"):
        DataSpec(source="mnist", augment=True)
    with pytest.raises(Exception, match="root: not used"):
        DataSpec(source="digits", root=tmp_path)
    assert build_model  # imported for the families' registry
