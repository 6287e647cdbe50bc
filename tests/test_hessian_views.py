"""PyHessian's views (bncli.probes.hessian_views) against the exact autograd Hessian of a tiny net."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from bncli.models import build_model
from bncli.probes.base import buffer_copies
from bncli.probes.hessian_views import (
    hessian_views,
    hutchinson_trace,
    hvp_many_closure,
    slq_density,
    top_eigenvalues,
)
from bncli.spec import ArmSpec, ModelSpec


def _net(norm: str = "batch"):
    """A 6-10-3 tanh MLP in float64 (123 parameters with BN, 103 without), training mode, 16 examples."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(kind="mlp", hidden=[10], activation="tanh"), ArmSpec(name="a", norm=norm),
                        (6,), 3).double()
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    model.train()
    theta = {n: p.detach() for n, p in model.named_parameters()}
    bufs = {n: b.detach().clone() for n, b in model.named_buffers()}

    def loss_of(params):
        return F.cross_entropy(functional_call(model, (params, buffer_copies(bufs)), (x,)), y)

    return model, theta, loss_of


@functools.cache
def _exact(norm: str = "batch") -> np.ndarray:
    """The exact Hessian's eigenvalues (ascending), from torch.autograd.functional.hessian."""
    _, theta, loss_of = _net(norm)
    names, shapes = list(theta), [p.shape for p in theta.values()]

    def flat_loss(v):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = v[i : i + s.numel()].reshape(s)
            i += s.numel()
        return loss_of(parts)

    h = torch.autograd.functional.hessian(flat_loss, torch.cat([p.reshape(-1) for p in theta.values()]))
    assert h.shape[0] <= 200
    return torch.linalg.eigvalsh((h + h.T) / 2).numpy()


def test_batched_hvp_equals_one_at_a_time():
    _, theta, loss_of = _net()
    hvp, n = hvp_many_closure(loss_of, theta)
    v = torch.randn(5, n, dtype=torch.float64)
    rows = torch.stack([hvp(r) for r in v])
    torch.testing.assert_close(hvp(v), rows, rtol=1e-12, atol=1e-12)


def test_trace_within_its_standard_error_of_the_exact_trace():
    for norm in ("batch", "none"):
        _, theta, loss_of = _net(norm)
        hvp, n = hvp_many_closure(loss_of, theta)
        t = hutchinson_trace(hvp, n, tol=0.02, max_samples=400, seed=3)
        exact = float(_exact(norm).sum())
        assert t["samples"] >= 8 and t["trace_se"] > 0
        assert abs(t["trace"] - exact) <= t["trace_se"], (norm, t, exact)  # 0.62 and 0.75 SE


def test_top_k_against_eigvalsh_dense_and_lanczos():
    _, theta, loss_of = _net()
    hvp, n = hvp_many_closure(loss_of, theta)
    exact = _exact()[::-1][:3]
    dense = top_eigenvalues(hvp, n, 3)
    assert dense["dense"]
    np.testing.assert_allclose(dense["eigenvalues"], exact, rtol=1e-9, atol=1e-12)
    lanczos = top_eigenvalues(hvp, n, 3, dense_max=0, tol=1e-8, max_iters=2000)
    assert not lanczos["dense"]
    np.testing.assert_allclose(lanczos["eigenvalues"], exact, rtol=1e-6, atol=1e-9)


def test_density_integral_one_and_mass_where_the_eigenvalues_are():
    _, theta, loss_of = _net()
    hvp, n = hvp_many_closure(loss_of, theta)
    exact = _exact()
    d = slq_density(hvp, n, runs=10, steps=40, seed=1, sigma=0.005)
    grid, dens = np.asarray(d["grid"]), np.asarray(d["density"])
    assert abs(np.trapezoid(dens, grid) - 1) < 1e-9 and np.all(dens >= 0)
    assert abs(sum(d["weights"]) - 1) < 1e-9
    # the spectrum's ends: the extreme Ritz values converge first
    assert abs(min(d["nodes"]) - exact[0]) < 1e-6 * abs(exact).max()
    assert abs(max(d["nodes"]) - exact[-1]) < 1e-6 * abs(exact).max()
    # histograms: the density's mass per bin against the exact eigenvalues' share per bin
    edges = np.linspace(grid[0], grid[-1], 9)
    cdf = np.concatenate([[0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))])
    mass = np.diff(np.interp(edges, grid, cdf))
    share = np.histogram(exact, edges)[0] / len(exact)
    assert np.abs(mass - share).max() < 0.15, (mass, share)
    assert abs(np.dot(d["weights"], d["nodes"]) - exact.mean()) < 0.2 * abs(exact).max()


def test_measuring_changes_nothing():
    model, theta, loss_of = _net()
    before_p = {n: p.detach().clone() for n, p in model.named_parameters()}
    before_b = {n: b.detach().clone() for n, b in model.named_buffers()}
    rng = torch.get_rng_state()
    np_rng = np.random.get_state()[1].copy()
    out = hessian_views(loss_of, theta, trace=True, top_k=3, density=True, density_steps=20, trace_max=16)
    assert set(out) >= {"hessian_trace", "hessian_trace_se", "hessian_top", "hessian_density"}
    for n, p in model.named_parameters():
        assert torch.equal(p, before_p[n]) and p.grad is None
    for n, b in model.named_buffers():
        assert torch.equal(b, before_b[n])
    assert torch.equal(torch.get_rng_state(), rng)
    assert np.array_equal(np.random.get_state()[1], np_rng)
