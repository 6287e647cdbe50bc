"""Models: named points, arms share initial values, BN/noise placement, noise semantics."""

from __future__ import annotations

import torch
from torch import nn

from bncli.data import load_data
from bncli.models import NoiseInjection, build_model
from bncli.runner.build import build_arm_model, initial_model
from bncli.spec import ArmSpec, ModelSpec, NoiseSpec, parse_spec


def test_points_and_weights_named():
    m = build_model(ModelSpec(hidden=[5, 6, 7]), ArmSpec(name="b", kind="batchnorm"), (4,), 3)
    assert m.point_names == ["layer1", "layer2", "layer3"]
    names = dict(m.named_parameters())
    for layer, pname in m.weight_param_names().items():
        assert names[pname] is m.block(layer).weight
    assert isinstance(m.block("layer2").norm, nn.BatchNorm1d)
    assert m(torch.randn(10, 4)).shape == (10, 3)


def test_cnn_shapes_and_bn2d():
    spec = ModelSpec(kind="cnn", channels=[4, 8, 8])
    m = build_model(spec, ArmSpec(name="b", kind="batchnorm"), (1, 8, 8), 10)
    assert isinstance(m.block("layer1").norm, nn.BatchNorm2d)
    assert m(torch.randn(5, 1, 8, 8)).shape == (5, 10)


def test_deep_linear_has_25_weight_layers():
    spec = ModelSpec(hidden=[10] * 24, activation="linear", init="xavier")
    m = build_model(spec, ArmSpec(name="p"), (10,), 10)
    linears = [mod for mod in m.modules() if isinstance(mod, nn.Linear)]
    assert len(linears) == 25


def test_all_arms_share_initial_values():
    spec = parse_spec({"data": {"source": "synthetic", "n_samples": 100, "n_features": 6},
                       "model": {"hidden": [8, 8]},
                       "arms": ["plain", "batchnorm", "noisy_batchnorm", "batchnorm_noaffine"]})
    data = load_data(spec.data)
    init = initial_model(spec, data, seed=5)
    models = [build_arm_model(spec, a, init, data, seed=5) for a in spec.arms]
    ref = dict(init.named_parameters())
    for m in models:
        shared = {k: v for k, v in m.named_parameters() if k in ref}
        assert set(shared) == set(ref)  # every weight and bias of the plain net is shared
        for k, v in shared.items():
            assert torch.equal(v, ref[k]), k
    other = initial_model(spec, data, seed=6)
    assert not torch.equal(other.layers.layer1.fc.weight, init.layers.layer1.fc.weight)


def test_post_position_puts_bn_after_activation():
    arm = ArmSpec(name="p", kind="batchnorm", position="post", affine=False)
    m = build_model(ModelSpec(hidden=[6], activation="relu"), arm, (3,), 2)
    m.train()
    blk = m.block("layer1")
    seen = {}
    blk.preact.register_forward_hook(lambda mod, i, o: seen.setdefault("pre", o))
    out = blk(torch.randn(50, 3))
    # post-activation BN: outputs are normalized (mean 0) even though relu outputs are >= 0
    assert torch.allclose(out.mean(0), torch.zeros(6), atol=1e-5)
    assert (seen["pre"] < 0).any()  # preact is the raw W x + b, before relu


def test_noise_draw_matches_definition_and_is_repeatable():
    p = NoiseSpec(n_mu=0.5, n_sigma=1.25, r_mu=0.1, r_sigma=0.1)
    noise = NoiseInjection(p, layer_index=0)
    noise.train()
    x = torch.ones(4000, 3)
    noise.seed = 11
    rng_before = torch.get_rng_state()
    y1 = noise(x)
    y2 = noise(x.clone())
    assert torch.equal(torch.get_rng_state(), rng_before)  # never touches the global RNG
    assert torch.equal(y1, y2)
    s, m = noise.draw(x.shape, x.device, x.dtype)
    mu_j = m.mean(0)
    assert (mu_j.abs() <= 0.5 + 0.1).all()
    assert ((m - mu_j).abs() <= 0.1 + 0.01).all()  # m_ij within r_mu of mu_j (+ sampling)
    sigma_j = s.mean(0)
    assert ((sigma_j > 1 - 0.02) & (sigma_j < 1.25 + 0.02)).all()
    assert torch.allclose(s.std(0), torch.full((3,), 0.1), atol=0.01)
    noise.seed = 12
    assert not torch.equal(noise(x), y1)
    noise.eval()
    assert torch.equal(noise(x), x)  # training mode only


def test_noise_conv_treats_positions_as_batch():
    noise = NoiseInjection(NoiseSpec(), layer_index=1)
    noise.seed = 3
    noise.train()
    x = torch.zeros(2, 4, 5, 5)
    s, m = noise.draw(x.shape, x.device, x.dtype)
    assert s.shape == x.shape
    assert m[0, 0, 0, 0] != m[0, 0, 0, 1]  # a draw per position, not per example only
