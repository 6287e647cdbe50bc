"""Fused conv families (bncli.runner.fused_vmap.VmapStack: torch.func vmap over one Net): a cnn, a
vgg and a resnet group give each run's single record in float64 (compared as in
tests/test_fused.py; SGD with momentum, a probe analysis), are planned fused, and a diverged member
is cut at its own step. Tiny nets on the 8x8 digits images, a few steps."""

from __future__ import annotations

import pytest
import torch
from test_fused import ADAM_LRS, REL, _compare, _records, assert_diverged_members_match, float64
from test_fused import _spec as _mlp_spec

from bncli.plan import plan
from bncli.runner.fused_vmap import VmapStack
from bncli.spec import Spec

MODELS = {
    "cnn": {"kind": "cnn", "channels": [3, 4], "activation": "relu"},
    "vgg": {"kind": "vgg", "depth": 11, "width": 1, "activation": "relu"},
    "resnet": {"kind": "resnet", "depth": 20, "width": 2, "activation": "relu"},
}


@pytest.fixture(autouse=True)
def _fuse_conv_on_the_cpu(monkeypatch):
    """The plan fuses conv families on a GPU only (bncli.plan.FUSED_GPU_ONLY); the maths is the
    same on the CPU, where these tests check it."""
    monkeypatch.setattr("bncli.plan._on_gpu", lambda device: True)


def _spec(model: dict, analysis: dict | None = None, arms: tuple = ("plain", "batchnorm"), **train) -> Spec:
    doc = {"seeds": 2, "threads": 1, "device": "cpu",
           "data": {"source": "digits", "shape": "image", "subset": 160, "test_subset": 60},
           "model": model,
           "train": {"lr": [0.05, 0.2], "steps": 8, "eval_every": 4, "batch_size": 12,
                     "eval_train_examples": 60, **train},
           "arms": list(arms), "analysis": analysis or {}}
    return Spec.model_validate(doc)


def _check(spec: Spec, analysis: str) -> tuple[dict, dict]:
    fused, single = _records(float64(spec), analysis)
    worst, where = _compare(fused, single)
    assert worst < REL, (where, worst)
    return fused, single


@pytest.mark.parametrize("family", list(MODELS))
def test_fused_conv_train_records_equal_single_in_float64(family):
    _check(_spec(MODELS[family], momentum=0.9, weight_decay=1e-3), "train")


@pytest.mark.parametrize("family,lr", [("cnn", [0.05, 0.2]), ("resnet", [0.01, 0.02])])
def test_fused_bn_without_affine_and_after_the_activation_equal_single_in_float64(family, lr):
    """(resnet: at lr 0.2 post-activation BN amplifies rounding ~10x per step, in a single run
    as much: 1e-15 on its initial weights is 1e-8 by step 8; at lrs 0.02/0.05 fused and single
    still part by up to 1e-10 on some instruction sets; at 0.01/0.02 by at most 5e-13.)"""
    _check(_spec(MODELS[family], arms=("batchnorm_noaffine", "batchnorm_post"), lr=lr, momentum=0.9),
           "train")


@pytest.mark.parametrize("activation,train", [
    ("tanh", {"optimizer": "adam", "lr": ADAM_LRS}),  # (relu's dead units: Adam parts faster, 1.4e-10)
    ("relu", {"schedule": "cosine", "warmup_steps": 3, "momentum": 0.9}),
], ids=["adam", "cosine-warmup-momentum"])
def test_fused_cnn_optimizers_and_schedules_equal_single_in_float64(activation, train):
    _check(_spec({**MODELS["cnn"], "activation": activation}, **train), "train")


def test_fused_cnn_float32_within_1e_5_plain_and_1e_4_bn():
    """float32: grouped and single convolutions round differently (~1e-7 here). On deeper BN
    nets a 1e-7 change of the initial weights alone can move a float32 run by 1e-2 within a few
    steps (a single run perturbed so follows the fused one), so the bound is checked on the cnn."""
    fused, single = _records(_spec(MODELS["cnn"], momentum=0.9), "train")
    for arm, bound in (("plain", 1e-5), ("batchnorm", 1e-4)):
        worst, where = _compare({k: v for k, v in fused.items() if k[0] == arm},
                                {k: v for k, v in single.items() if k[0] == arm})
        assert worst < bound, (arm, where, worst)


def test_fused_cnn_on_stored_augmented_images_as_single_runs(tmp_path):
    """uint8 CIFAR images, each member's batch normalized and augmented from its own seed."""
    import json

    from image_files import make_cifar
    from typer.testing import CliRunner

    from bncli.cli import app

    make_cifar(tmp_path, per_batch=16, n_test=16)
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({
        "name": "img", "device": "cpu", "seeds": 2,
        "data": {"source": "cifar10", "root": str(tmp_path), "augment": True},
        "model": {"kind": "cnn", "channels": [2, 3], "activation": "relu"},
        "arms": ["plain", "batchnorm"],
        "train": {"lr": [0.05, 0.2], "batch_size": 8, "steps": 6, "eval_every": 3}}))
    docs = {}
    for fuse in ("auto", "off"):
        res = CliRunner().invoke(app, ["train", str(spec), "--fuse", fuse, "--json", "--threads", "1"])
        assert res.exit_code == 0, res.output
        docs[fuse] = json.loads(res.stdout)["runs"]
    assert {r["numerics"] for r in docs["auto"]} == {"fused"}
    for a, b in zip(docs["auto"], docs["off"], strict=True):
        assert (a["arm"], a["lr"], a["seed"], b["numerics"]) == (b["arm"], b["lr"], b["seed"], "single")
        for key in ("train_loss", "test_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("analysis,settings", [
    ("saturation", {"saturation": {"every": 3, "probe_size": 16}}),
    ("ics", {"ics": {"every": 3, "probe_size": 16, "tracked_units": 2}}),
    ("landscape", {"lipschitz": {"every": 4, "eta_points": 2, "jacobian_units": 2, "jacobian_rows": 16}}),
    ("scale", {"scale": {"every": 4, "probe_size": 16, "alphas": [0.1, 10.0]}}),
], ids=["saturation", "ics_dist+ics_grad", "landscape+bn_jacobian", "scale"])
def test_fused_cnn_probe_records_equal_single_in_float64(analysis, settings):
    _check(_spec(MODELS["cnn"], settings, momentum=0.9), analysis)


def test_fused_resnet_probe_records_equal_single_in_float64():
    _check(_spec(MODELS["resnet"], {"saturation": {"every": 3, "probe_size": 16}}), "saturation")


@pytest.mark.parametrize("family", list(MODELS))
def test_conv_jobs_are_planned_fused_and_off_single(family):
    spec = _spec(MODELS[family])
    assert {j.numerics for j in plan(spec, "train")} == {"fused"}
    assert {j.numerics for j in plan(spec.model_copy(update={"fuse": "off"}), "train")} == {"single"}
    noisy = Spec.model_validate({**spec.model_dump(mode="json"), "arms": ["noisy_batchnorm"]})
    assert {j.numerics for j in plan(noisy, "train")} == {"single"}


@pytest.mark.parametrize("family", list(MODELS))
def test_conv_families_fuse_on_a_gpu_only(monkeypatch, family):
    monkeypatch.undo()
    spec = _spec(MODELS[family])
    assert {j.numerics for j in plan(spec, "train")} == {"single"}  # device: cpu
    gpu = spec.model_copy(update={"device": "cuda"})
    assert {j.numerics for j in plan(gpu, "train")} == {"fused"}
    assert _mlp_spec().device == "cpu"
    assert {j.numerics for j in plan(_mlp_spec(), "train")} == {"fused"}  # MLPs fuse on the CPU


def test_a_diverged_conv_member_is_cut_at_its_step():
    spec = _spec(MODELS["cnn"], lr=[0.05, 1e4], steps=12)
    fused, single = _check(spec, "train")
    assert_diverged_members_match(fused, single)


def test_vmap_stack_keeps_each_members_bn_buffers_and_counter():
    """BN's running statistics and num_batches_tracked update in each member's own slice, and
    materialize gives each member's Net what the same forwards give it alone."""
    from bncli.models import build_model
    from bncli.spec import ArmSpec, ModelSpec

    torch.manual_seed(0)
    arm = ArmSpec(name="bn", norm="batch")
    nets = [build_model(ModelSpec(**MODELS["cnn"]), arm, (1, 8, 8), 3) for _ in range(3)]
    stack = VmapStack(nets)
    rules = {type(m).__name__ for m in stack._net.modules() if "forward" in vars(m)}
    assert rules == {"BatchNorm2d", "MaxPool2d"}  # the flat [B, K·C] rules (fused_vmap)
    x = torch.randn(3, 5, 1, 8, 8)
    for _ in range(2):
        out = stack.forward(x, training=True)
    assert out.shape == (3, 5, 3)
    eval_out = stack.forward(x[0], training=False)
    for i, net in enumerate(nets):
        net.train()
        for _ in range(2):
            alone = net(x[i])
        torch.testing.assert_close(out[i], alone, rtol=1e-5, atol=1e-6)
        copy = build_model(ModelSpec(**MODELS["cnn"]), arm, (1, 8, 8), 3)
        stack.materialize(i, copy)
        for (n, a), (_, b) in zip(net.named_buffers(), copy.named_buffers(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)
        assert int(stack.buffers_of(i)["layers.layer1.norm.num_batches_tracked"]) == 2
        net.eval()
        torch.testing.assert_close(eval_out[i], net(x[0]), rtol=1e-5, atol=1e-6)
