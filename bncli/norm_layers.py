"""The one hand-written normalization layer: Santurkar et al. 2018 §3.3's ℓp normalization.

Every other normalization is torch's own layer (bncli.norms builds them).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def _units(x: torch.Tensor) -> torch.Tensor:
    """(B, C) or (B, C, H, W) -> (N, C): conv maps count height x width as samples, as BN does."""
    return x if x.dim() == 2 else x.movedim(1, -1).reshape(-1, x.shape[1])


def lp_scale(c: torch.Tensor, p: float) -> torch.Tensor:
    """(1/m) Σ_j ‖c_j‖_p / d^{1/p} over the m rows c_j ∈ R^d of a centred (m, d) block (d^{1/∞} = 1);
    for a stack (..., m, d) of blocks (a fused group's members), one scalar per block.

    The d^{1/p} makes the scalar an average per-unit magnitude (for p = 1 the mean |c|, for p = 2
    the root mean square per example), so the normalized values are O(1) at any width, as with BN.
    """
    if p == 1:
        return c.abs().mean(dim=(-2, -1))  # Σ_j ‖c_j‖_1 / (m d): the same number, fewer kernels
    if math.isinf(p):
        return c.abs().amax(dim=-1).mean(-1)
    # contiguous: a fused group's narrow layers lie feature-major ([K, d, m] memory seen as
    # [K, m, d]), where vector_norm over the strided last dim took 2.8x as long as copy + norm
    return torch.linalg.vector_norm(c.contiguous(), ord=p, dim=-1).mean(-1) / c.shape[-1] ** (1.0 / p)


def lp_unit_scale(c: torch.Tensor, p: float) -> torch.Tensor:
    """Per unit k: ((1/m) Σ_j |c_jk|^p)^{1/p} over the m rows of a centred (m, d) block (ℓ∞: max_j
    |c_jk|): each unit's own ℓp magnitude over the batch (for p = 2 BN's standard deviation); for
    a stack (..., m, d), per block and unit."""
    if p == 1:
        return c.abs().mean(-2)
    if math.isinf(p):
        return c.abs().amax(-2)
    return c.abs().pow(p).mean(-2).pow(1.0 / p)


class LpNorm(nn.Module):
    """ℓp normalization (Santurkar et al. 2018 §3.3): centre each unit on its batch mean, then divide
    the whole layer by ONE scalar, the batch-average ℓp norm of the centred examples.

    Training mode, for an (m, d) block of pre-activations x (rows: examples, or examples x
    positions on conv maps, like BN; d: units or channels):
        μ = per-unit batch mean,  c_i = x_i − μ,  s = (1/m) Σ_j ‖c_j‖_p / d^{1/p},
        x̂_i = c_i / (s + ε),      y_i = γ ⊙ x̂_i + β  (γ, β per unit when affine).
    No unit's variance is fixed (only the layer's average magnitude is), so ℓ2 here is not BN.
    With scope="unit" (the paper's sentence read per unit, as Hoffer et al. 2018's L1 BN) s is a
    vector, s_k = ((1/m) Σ_j |c_jk|^p)^{1/p} (ℓ∞: max_j |c_jk|), and ℓ2 is BN (biased variance).
    Eval mode uses running estimates of μ (per unit) and of s (one scalar), kept with BN's
    exponential average: running ← (1 − momentum)·running + momentum·batch value (no m/(m − 1)
    correction: s is not a variance). ε sits outside the norm, so scaling x by α > 0
    gives c/(s + ε/α): invariant as ε → 0.
    """

    def __init__(self, width: int, p: float, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, scope: str = "layer") -> None:
        super().__init__()
        if scope not in ("layer", "unit"):
            raise ValueError(f"scope must be layer or unit, not {scope!r}")
        self.scope = scope
        self.width = int(width)
        self.p = float(p)
        self.eps = float(eps)
        self.momentum = float(momentum)
        if affine:
            self.weight: nn.Parameter | None = nn.Parameter(torch.ones(width))
            self.bias: nn.Parameter | None = nn.Parameter(torch.zeros(width))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(width))
        self.register_buffer("running_scale", torch.ones(width) if scope == "unit" else torch.ones(()))

    def extra_repr(self) -> str:
        p = "inf" if math.isinf(self.p) else f"{self.p:g}"
        return (f"{self.width}, p={p}, scope={self.scope}, eps={self.eps:g}, momentum={self.momentum:g}, "
                f"affine={self.weight is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = _units(x)
        if self.training:  # the block's maths is the fused groups' too (lp_block_forward)
            y, mu, _, s, _, _ = lp_block_forward(u, self.weight, self.bias, self.p, self.scope == "unit", self.eps)
            # in place, like BN's running statistics (probes hand in buffer copies); not lerp_,
            # which torch.func.vmap has no batching rule for
            m = self.momentum
            self.running_mean.mul_(1.0 - m).add_(mu.detach(), alpha=m)
            self.running_scale.mul_(1.0 - m).add_(s.detach(), alpha=m)
        else:
            c = u - self.running_mean
            inv = 1.0 / (self.running_scale + self.eps)
            y = c * inv if self.weight is None else torch.addcmul(self.bias, c, self.weight * inv)
        if x.dim() == 2:
            return y
        return y.reshape(x.shape[0], *x.shape[2:], x.shape[1]).movedim(-1, 1)


# --------------------------------------------------------------------------- a fused group's ℓp


def _scale_backward(c: torch.Tensor, s: torch.Tensor, gs: torch.Tensor, p: float, unit: bool,
                    norms: torch.Tensor | None = None) -> torch.Tensor:
    """gs · ∂s/∂c for blocks c [..., m, d] as autograd differentiates lp_scale (layer: s, gs
    [...]) and lp_unit_scale (unit: s, gs [..., d]): |c|'s derivative sgn(c), amax's spread evenly
    over ties, the 2-norm's 0 at a zero row."""
    m, d = c.shape[-2], c.shape[-1]
    if unit:
        if p == 1:
            return torch.sign(c) * (gs / m).unsqueeze(-2)
        if math.isinf(p):
            mask = c.abs() == s.unsqueeze(-2)
            return torch.sign(c) * mask * (gs.unsqueeze(-2) / mask.sum(-2, keepdim=True))
        return c * (gs / (m * s)).unsqueeze(-2)  # p = 2: s_k = (mean_j c_jk²)^½
    gsb = gs[..., None, None]
    if p == 1:
        return torch.sign(c) * (gsb / (m * d))
    if math.isinf(p):
        a = c.abs()
        mask = a == a.amax(-1, keepdim=True)
        return torch.sign(c) * mask * (gsb / (m * mask.sum(-1, keepdim=True)))
    if norms is None:  # p = 2: each row's 2-norm (the forward's, when it saved them)
        norms = torch.linalg.vector_norm(c.contiguous(), ord=2, dim=-1)
    norms = norms.unsqueeze(-1)
    return c * (gsb / (m * d ** 0.5) / norms).masked_fill_(norms == 0, 0.0)


def lp_block_forward(u: torch.Tensor, g: torch.Tensor | None, b: torch.Tensor | None, p: float, unit: bool,
                     eps: float) -> tuple[torch.Tensor, ...]:
    """LpNorm.forward's training-mode ops for blocks u [..., m, d] (a fused group's members), γ, β
    [..., d] or None: (y, batch mean [..., d], centred c, scale s, 1/(s + ε), and for ℓ2 per layer
    each row's 2-norm (else None), which the written-out backward reuses)."""
    mu = u.mean(-2)
    c = u - mu.unsqueeze(-2)
    norms = None
    if not unit and p == 2:  # lp_scale's ops, keeping the rows' norms
        norms = torch.linalg.vector_norm(c.contiguous(), ord=p, dim=-1)
        s = norms.mean(-1) / c.shape[-1] ** (1.0 / p)
    else:
        s = lp_unit_scale(c, p) if unit else lp_scale(c, p)
    inv = 1.0 / (s + eps)
    inv_d = inv if unit else inv.unsqueeze(-1)  # [..., d] or [..., 1]
    if g is None:
        y = c * inv_d.unsqueeze(-2)
    else:
        y = torch.addcmul(b.unsqueeze(-2), c, (g * inv_d).unsqueeze(-2))
    return y, mu, c, s, inv, norms


class _LpNormalize(torch.autograd.Function):
    """LpNorm's training-mode maths for blocks u [..., m, d] (a fused group's members): centre on
    each unit's batch mean, divide by the ℓp scale s (lp_scale or lp_unit_scale), then γ, β
    ([..., d]; None: no affine). The forward is LpNorm.forward's ops; the backward is written out
    (eight passes over the block instead of autograd's ~13 kernels and nodes per layer). Once
    differentiable only: the fused training step uses it, the probes' functional forms (Hessian-
    vector products) take the autograd path. Returns (y, batch mean [..., d], s)."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, g: torch.Tensor | None, b: torch.Tensor | None, p: float,
                unit: bool, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, mu, c, s, inv, norms = lp_block_forward(u, g, b, p, unit, eps)
        ctx.save_for_backward(c, s, inv, g, norms)
        ctx.p, ctx.unit = p, unit
        ctx.mark_non_differentiable(mu, s)
        return y, mu, s

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor, _gmu: Any, _gs: Any) -> tuple:
        c, s, inv, g, norms = ctx.saved_tensors
        unit = ctx.unit
        inv_d = inv if unit else inv.unsqueeze(-1)
        t = (gy * c).sum(-2)  # Σ_m gy·c per unit
        gg = gb = None
        if g is not None:
            gb = gy.sum(-2) if ctx.needs_input_grad[2] else None
            gg = t * inv_d if ctx.needs_input_grad[1] else None
            t = t * g
            w = g * inv_d
        else:
            w = inv_d.expand_as(t)
        gi = t if unit else t.sum(-1)  # ∂L/∂inv
        gs = -gi * inv * inv
        gc = gy * w.unsqueeze(-2)
        gc += _scale_backward(c, s, gs, ctx.p, unit, norms)
        gu = gc - gc.mean(-2, keepdim=True)
        return gu, gg, gb, None, None, None


def lp_normalize(u: torch.Tensor, g: torch.Tensor | None, b: torch.Tensor | None, p: float, unit: bool,
                 eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """_LpNormalize.apply: (y, batch mean, scale) of blocks u [..., m, d]."""
    return _LpNormalize.apply(u, g, b, p, unit, eps)
