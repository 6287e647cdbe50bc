"""The fused group's ℓp normalization (norm_layers.lp_normalize, a hand-written backward) against
autograd through LpNorm's own ops (lp_scale / lp_unit_scale), in float64, for every p and scope,
with and without γ/β, with ties for ℓ∞ and a zero row for ℓ2."""

from __future__ import annotations

import math

import pytest
import torch

from bncli.norm_layers import lp_normalize, lp_scale, lp_unit_scale


def _reference(u, g, b, p, unit, eps):
    mu = u.mean(-2)
    c = u - mu.unsqueeze(-2)
    s = lp_unit_scale(c, p) if unit else lp_scale(c, p)
    inv = 1.0 / (s + eps)
    inv_d = inv if unit else inv.unsqueeze(-1)
    if g is None:
        return c * inv_d.unsqueeze(-2), mu, s
    return torch.addcmul(b.unsqueeze(-2), c, (g * inv_d).unsqueeze(-2)), mu, s


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
@pytest.mark.parametrize("unit", [False, True])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("feature_major", [False, True])
def test_lp_normalize_matches_autograd(p, unit, affine, feature_major):
    gen = torch.Generator().manual_seed(4)
    k, m, d = 3, 12, 5
    u = torch.randn(k, d, m, generator=gen, dtype=torch.float64).transpose(1, 2) if feature_major else \
        torch.randn(k, m, d, generator=gen, dtype=torch.float64)
    sym = torch.tensor([3.0, -3.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0, 0.0, 1.5, -1.5], dtype=torch.float64)
    with torch.no_grad():
        u[0, :, 2] = sym  # mean 0: |c| ties at the unit's max (ℓ∞ per unit)
        u[2] *= 0.1
        u[2, :, 0] = sym  # units 0 and 1 equal and the largest: every row's max is a tie (ℓ∞ per layer)
        u[2, :, 1] = sym
    g = (torch.rand(k, d, generator=gen, dtype=torch.float64) + 0.5) if affine else None
    b = torch.randn(k, d, generator=gen, dtype=torch.float64) if affine else None
    gy = torch.randn(k, m, d, generator=gen, dtype=torch.float64)

    def grads(fn):
        leaves = [u.detach().clone().requires_grad_()] + ([t.detach().clone().requires_grad_() for t in (g, b)]
                                                          if affine else [])
        y, mu, s = fn(leaves[0], leaves[1] if affine else None, leaves[2] if affine else None, p, unit, 1e-5)
        return (y, mu, s), torch.autograd.grad(y, leaves, gy)

    (y1, mu1, s1), got = grads(lp_normalize)
    (y2, mu2, s2), want = grads(_reference)
    assert torch.equal(y1, y2) and torch.equal(mu1, mu2) and torch.equal(s1, s2)
    for a, w in zip(got, want, strict=True):
        assert torch.allclose(a, w, rtol=1e-12, atol=1e-13), (a - w).abs().max()


def test_lp_normalize_zero_row_l2_layer():
    """Rows that are zero once centred (the units' means): the 2-norm's gradient is 0 there."""
    u = torch.zeros(1, 4, 3, dtype=torch.float64)
    u[0, 0] = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    u[0, 1] = -u[0, 0]  # mean 0: rows 2 and 3 stay zero after centring
    u.requires_grad_()
    gy = torch.arange(12, dtype=torch.float64).view(1, 4, 3)
    a = torch.autograd.grad(lp_normalize(u, None, None, 2.0, False, 1e-5)[0], u, gy)[0]
    b = torch.autograd.grad(_reference(u, None, None, 2.0, False, 1e-5)[0], u, gy)[0]
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-13)
