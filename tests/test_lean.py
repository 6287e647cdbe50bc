"""The lean training step (no probes: Net.set_taps(False), one flat sequence of torch calls for
fully-connected chains, deferred num_batches_tracked) gives bitwise the weights, BN buffers and
losses of the same run with its taps on (the reference path every probe uses)."""

from __future__ import annotations

import pytest
import torch

from bncli.runner.build import build_arm_model, initial_model
from bncli.runner.cache import cpu_data
from bncli.spec import Spec
from bncli.train import train_run


class _Watcher:
    """A probe with no hooks: its presence alone keeps the taps on (the non-lean path)."""

    name = "watcher"
    every = 10**9

    def result(self) -> None:
        return None


def _spec(arms, model=None, **train) -> Spec:
    doc = {"seeds": 1, "threads": 1, "device": "cpu",
           "data": {"source": "synthetic", "n_samples": 300, "n_features": 10, "n_classes": 3},
           "model": {"hidden": [12, 12], "activation": "relu", **(model or {})},
           "train": {"lr": [0.3], "steps": 30, "eval_every": 10, "batch_size": 20,
                     "eval_train_examples": 100, **train},
           "arms": arms}
    return Spec.model_validate(doc)


def _train(spec: Spec, arm, lean: bool):
    data = cpu_data(spec)
    init = initial_model(spec, data, 0)
    model = build_arm_model(spec, arm, init, data, 0)
    out = train_run(model, data, arm, spec.train, spec.train.lr[0], 0, () if lean else (_Watcher(),))
    return model, out


@pytest.mark.parametrize("arms,model,train", [
    (["plain", "batchnorm", "batchnorm_post", "batchnorm_noaffine"], None, {}),
    (["plain", "batchnorm"], {"activation": "sigmoid"}, {"momentum": 0.9, "weight_decay": 1e-3}),
    (["batchnorm"], {"activation": "tanh"}, {"optimizer": "adam", "lr": [0.01]}),
])
def test_lean_run_is_bitwise_the_tapped_run(arms, model, train):
    spec = _spec(arms, model, **train)
    for arm in spec.arms:
        lean_model, lean = _train(spec, arm, lean=True)
        ref_model, ref = _train(spec, arm, lean=False)
        assert lean.step_losses == ref.step_losses and lean.steps_done == ref.steps_done == 30
        assert lean.history.test_loss == ref.history.test_loss
        a, b = lean_model.state_dict(), ref_model.state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (arm.name, k)
        # the deferred counter is in place once the run ends: BN saw every step's batch once
        for k, v in a.items():
            if k.endswith("num_batches_tracked"):
                assert int(v) == 30
        # and the model is back to its tapped forward (hooks fire again)
        assert not lean_model._flat and all(blk.taps for blk in lean_model.layers.values())


def test_lean_forward_is_the_flat_chain_and_matches_the_module_forward():
    spec = _spec(["batchnorm"])
    data = cpu_data(spec)
    model = build_arm_model(spec, spec.arms[0], initial_model(spec, data, 0), data, 0)
    model.eval()
    x = data.x_test[:7]
    ref = model(x)
    model.set_taps(False)
    assert len(model._flat) == 2 * 3 + 1 + int(model.flatten_input)  # linear, bn, act per block; head
    assert torch.equal(model(x), ref)
    model.set_taps(True)
    assert torch.equal(model(x), ref)
