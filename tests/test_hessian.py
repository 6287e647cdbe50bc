"""Hessian extreme eigenvalues by Lanczos (bncli.probes.hessian) against exact Hessians."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from bncli.models import build_model
from bncli.probes.base import buffer_copies
from bncli.probes.hessian import hessian_extremes, hvp_closure, lanczos_extremes
from bncli.spec import ArmSpec, ModelSpec

KEYS = {"lambda_max", "lambda_min", "residual_max", "residual_min", "converged_max", "converged_min",
        "hvps", "dense", "n_params"}


def _net(norm: str, mode: str):
    """A 6-12-10-3 tanh MLP (291 parameters with BN, 247 without) on 16 examples, in `mode`."""
    torch.manual_seed(0)
    ms = ModelSpec(kind="mlp", hidden=[12, 10], activation="tanh")
    model = build_model(ms, ArmSpec(name="a", norm=norm), (6,), 3)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    model.train()
    if mode == "eval":
        with torch.no_grad():  # running statistics away from their initial 0 / 1
            for _ in range(3):
                model(torch.randn(16, 6) * 2 + 0.5)
        model.eval()
    theta = {n: p.detach() for n, p in model.named_parameters()}
    bufs = {n: b.detach().clone() for n, b in model.named_buffers()}

    def loss_of(params):
        return F.cross_entropy(functional_call(model, (params, buffer_copies(bufs)), (x,)), y)

    return model, theta, bufs, loss_of


@functools.cache
def _exact(norm: str, mode: str) -> tuple[float, float]:
    """(lambda_max, lambda_min) of the Hessian from torch.autograd.functional.hessian."""
    _, theta, _, loss_of = _net(norm, mode)
    names, shapes = list(theta), [p.shape for p in theta.values()]

    def flat_loss(v):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = v[i : i + s.numel()].reshape(s)
            i += s.numel()
        return loss_of(parts)

    flat = torch.cat([p.reshape(-1) for p in theta.values()])
    h = torch.autograd.functional.hessian(flat_loss, flat).double()
    eigs = torch.linalg.eigvalsh((h + h.T) / 2)
    return float(eigs[-1]), float(eigs[0])


@pytest.mark.parametrize("norm,mode", [("batch", "train"), ("batch", "eval"), ("none", "train")])
@pytest.mark.parametrize("dense", [False, True])
def test_matches_exact_hessian_in_both_bn_modes(norm, mode, dense):
    _, theta, _, loss_of = _net(norm, mode)
    lmax, lmin = _exact(norm, mode)
    r = hessian_extremes(loss_of, theta, dense_max=10_000 if dense else 0)
    assert set(r) == KEYS
    assert r["dense"] is dense and r["n_params"] == (291 if norm == "batch" else 247)
    assert r["lambda_max"] == pytest.approx(lmax, rel=1e-3)
    assert r["lambda_min"] == pytest.approx(lmin, rel=1e-3)
    assert r["converged_max"] is True and r["converged_min"] is True
    assert r["residual_max"] <= 1e-3 and r["residual_min"] <= 1e-3
    for k, v in r.items():  # plain Python numbers, never tensors
        assert type(v) in (float, bool, int), (k, type(v))
    if not dense:
        assert r["hvps"] < 291  # Lanczos beats forming the Hessian
        assert r["hvps"] <= 2 * 100 + 2


def test_default_path_for_a_net_is_lanczos_and_tiny_is_dense():
    _, theta, _, loss_of = _net("batch", "train")
    assert hessian_extremes(loss_of, theta)["dense"] is False  # 291 parameters > DENSE_MAX
    w = torch.tensor([0.3, -0.2, 0.5])
    r = hessian_extremes(lambda p: (p["w"] ** 4).sum() - 2 * p["w"][0] * p["w"][1], {"w": w})
    exact = np.linalg.eigvalsh(np.array([[12 * 0.09, -2, 0], [-2, 12 * 0.04, 0], [0, 0, 12 * 0.25]]))
    assert r["dense"] is True and r["hvps"] == 3 + 2
    assert r["lambda_max"] == pytest.approx(exact[-1], rel=1e-5)
    assert r["lambda_min"] == pytest.approx(exact[0], rel=1e-5)


def _indefinite(n: int, p: int):
    """L(a, b) = 1/2 a'Aa + a'Bb + 1/2 b'Cb with known spectrum: lambda_min = -3 < -lambda_max = -2."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    d = np.concatenate([[-3.0, 2.0], rng.uniform(-1.0, 1.5, n - 2)])
    m = torch.tensor((q * d) @ q.T)
    a_mat, b_mat, c_mat = m[:p, :p], m[:p, p:], m[p:, p:]

    def loss(params):
        a, b = params["a"], params["b"]
        return 0.5 * a @ a_mat @ a + a @ b_mat @ b + 0.5 * b @ c_mat @ b

    theta = {"a": torch.tensor(rng.standard_normal(p)), "b": torch.tensor(rng.standard_normal(n - p))}
    return loss, theta


@pytest.mark.parametrize("n,dense", [(40, True), (400, False)])
def test_indefinite_hessian_gives_both_signed_ends(n, dense):
    loss, theta = _indefinite(n, n // 3)
    flat = torch.cat([theta["a"], theta["b"]])
    p = theta["a"].numel()
    h = torch.autograd.functional.hessian(lambda v: loss({"a": v[:p], "b": v[p:]}), flat)
    exact = torch.linalg.eigvalsh(h)
    assert float(exact[0]) == pytest.approx(-3.0) and float(exact[-1]) == pytest.approx(2.0)
    r = hessian_extremes(loss, theta, tol=1e-6, max_iters=300)
    assert r["dense"] is dense
    # the algebraic ends, not the largest magnitude: |lambda_min| > lambda_max > 0
    assert r["lambda_max"] > 0 > r["lambda_min"] and abs(r["lambda_min"]) > r["lambda_max"]
    assert r["lambda_max"] == pytest.approx(2.0, rel=1e-6)
    assert r["lambda_min"] == pytest.approx(-3.0, rel=1e-6)
    assert r["converged_max"] and r["converged_min"]


@pytest.mark.parametrize("max_iters", [1, 2])
def test_tiny_budget_is_not_converged_and_reports_its_residual(max_iters):
    _, theta, _, loss_of = _net("batch", "train")
    lmax, lmin = _exact("batch", "train")
    r = hessian_extremes(loss_of, theta, max_iters=max_iters, dense_max=0)
    assert r["converged_max"] is False and r["converged_min"] is False
    for end in ("max", "min"):
        assert math.isfinite(r[f"residual_{end}"]) and r[f"residual_{end}"] > 1e-3
    assert r["hvps"] == 2 * max_iters + 2  # the budget per end, plus one checking HVP per end
    # Rayleigh-Ritz values lie inside the spectrum
    assert lmin - 1e-4 <= r["lambda_max"] <= lmax + 1e-4
    assert lmin - 1e-4 <= r["lambda_min"] <= lmax + 1e-4


def test_which_one_end_only():
    _, theta, _, loss_of = _net("batch", "eval")
    r = hessian_extremes(loss_of, theta, which=("LA",))
    assert r["lambda_min"] is None and r["residual_min"] is None and r["converged_min"] is None
    assert r["lambda_max"] == pytest.approx(_exact("batch", "eval")[0], rel=1e-3)
    with pytest.raises(ValueError, match="which"):
        hessian_extremes(loss_of, theta, which=("LM",))


def test_measuring_changes_nothing_and_is_deterministic():
    model, _, _, _ = _net("batch", "train")
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    F.cross_entropy(model(x), y).backward()
    live = dict(model.named_parameters())  # the live leaves themselves, not copies
    bufs_before = {n: b.clone() for n, b in model.named_buffers()}
    params_before = {n: p.detach().clone() for n, p in live.items()}
    grads_before = {n: p.grad.clone() for n, p in live.items()}
    torch_rng, np_rng = torch.get_rng_state(), np.random.get_state()

    def loss_of(params):  # BN in training mode writes running stats into these copies only
        return F.cross_entropy(functional_call(model, (params, buffer_copies(bufs_before)), (x,)), y)

    r1 = hessian_extremes(loss_of, live, seed=5)
    r2 = hessian_extremes(loss_of, live, seed=5)
    assert r1 == r2
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), params_before[n]) and torch.equal(p.grad, grads_before[n])
        assert p.requires_grad and p.is_leaf
    for n, b in model.named_buffers():
        assert torch.equal(b, bufs_before[n])
    assert torch.equal(torch.get_rng_state(), torch_rng)
    state = np.random.get_state()
    assert state[0] == np_rng[0] and np.array_equal(state[1], np_rng[1]) and state[2:] == np_rng[2:]
    r3 = hessian_extremes(loss_of, live, seed=6)  # another start vector, same answer
    assert r3["lambda_max"] == pytest.approx(r1["lambda_max"], rel=1e-3)


def test_hvp_closure_and_non_finite_curvature():
    _, theta, _, loss_of = _net("none", "train")
    hvp, n = hvp_closure(loss_of, theta)
    assert n == 247
    v = torch.randn(n, dtype=torch.float64)
    hv = hvp(v)
    assert hv.shape == (n,) and hv.dtype == torch.float32
    assert float(v.double() @ hvp(v).double()) == pytest.approx(float(v @ hv.double()), rel=1e-6)

    def bad(u: torch.Tensor) -> torch.Tensor:
        return u * math.nan

    for dense_max in (0, 1000):
        r = lanczos_extremes(bad, 300, dense_max=dense_max)
        assert math.isnan(r["lambda_max"]) and r["converged_max"] is False and r["converged_min"] is False
