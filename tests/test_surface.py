"""Filter-normalized directions and loss surfaces (bncli.probes.surface) against plain references."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from bncli.models import build_model
from bncli.probes.surface import filter_directions, loss_surface, surface_coords, surface_summary
from bncli.spec import ArmSpec, ModelSpec


def _net(norm: str = "batch", kind: str = "mlp"):
    torch.manual_seed(0)
    if kind == "mlp":
        ms, shape, x = ModelSpec(kind="mlp", hidden=[10], activation="tanh"), (6,), torch.randn(16, 6)
    else:
        ms, shape, x = ModelSpec(kind="cnn", channels=[4], hidden=[]), (1, 6, 6), torch.randn(8, 1, 6, 6)
    model = build_model(ms, ArmSpec(name="a", norm=norm), shape, 3).double()
    model.train()
    theta = {n: p.detach() for n, p in model.named_parameters()}
    bufs = {n: b.detach().clone() for n, b in model.named_buffers()}
    return model, theta, bufs, x.double(), torch.randint(0, 3, (x.shape[0],))


def test_filter_normalized_per_filter_and_bn_and_biases_left_out():
    w = {"conv.weight": torch.randn(5, 3, 3, 3), "conv.bias": torch.randn(5), "bn.weight": torch.ones(5),
         "fc.weight": torch.randn(4, 7) * 3}
    d = filter_directions(w, seed=11)
    for name in ("conv.weight", "fc.weight"):
        for f in range(w[name].shape[0]):
            torch.testing.assert_close(d[name][f].norm(), w[name][f].norm(), rtol=1e-6, atol=0)
    assert not d["conv.bias"].any() and not d["bn.weight"].any()
    assert torch.equal(filter_directions(w, seed=11)["fc.weight"], d["fc.weight"])
    assert not torch.equal(filter_directions(w, seed=12)["fc.weight"], d["fc.weight"])


def test_same_draws_for_both_arms():
    _, tb, *_ = _net("batch")
    _, tp, *_ = _net("none")
    db, dp = filter_directions(tb, 5), filter_directions(tp, 5)
    wb = [n for n in tb if tb[n].dim() >= 2]
    wp = [n for n in tp if tp[n].dim() >= 2]
    assert len(wb) == len(wp)
    for a, b in zip(wb, wp):  # the raw Gaussian draw, before each arm's own filter scaling
        ra = db[a] / (tb[a].flatten(1).norm(dim=1) / db[a].flatten(1).norm(dim=1)).view(-1, 1)
        rb = dp[b] / (tp[b].flatten(1).norm(dim=1) / dp[b].flatten(1).norm(dim=1)).view(-1, 1)
        torch.testing.assert_close(ra / ra.norm(), rb / rb.norm())


def test_centre_is_the_models_loss_and_batched_equals_loop():
    for kind in ("mlp", "cnn"):
        for mode in ("train", "eval"):
            model, theta, bufs, x, y = _net("batch", kind)
            model.train(mode == "train")
            dirs = [filter_directions(theta, 1), filter_directions(theta, 2)]
            coords = surface_coords(5, 1.0)
            s2 = loss_surface(model, F.cross_entropy, x, y, theta, bufs, dirs, coords, chunk=7)
            loop = loss_surface(model, F.cross_entropy, x, y, theta, bufs, dirs, coords, batched=False)
            torch.testing.assert_close(s2, loop, rtol=1e-12, atol=1e-12)
            with torch.no_grad():
                ref = F.cross_entropy(functional_call(model, (theta, {k: v.clone() for k, v in bufs.items()}),
                                                      (x,)), y)
            torch.testing.assert_close(s2[2, 2], ref, rtol=1e-12, atol=0)
            s1 = loss_surface(model, F.cross_entropy, x, y, theta, bufs, dirs[:1], coords)
            torch.testing.assert_close(s1, s2[:, 2], rtol=1e-12, atol=1e-12)
            # the model's own buffers untouched by the per-point running-stat updates
            for n, b in model.named_buffers():
                assert torch.equal(b, bufs[n])


def test_summary():
    s = surface_summary([[3.0, 2.0, 4.0], [1.0, 0.5, 2.0], [5.0, 1.0, 1.0]], [-1.0, 0.0, 1.0])
    assert s == {"centre": 0.5, "min": 0.5, "max": 5.0, "range": 4.5, "rise": 4.5}
    assert surface_summary([2.0, 1.0, 3.0], [-1.0, 0.0, 1.0])["rise"] == 2.0
