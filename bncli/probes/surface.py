"""Filter-normalized random directions and 1-D / 2-D loss surfaces around a point (Li et al. 2018,
"Visualizing the Loss Landscape of Neural Nets"), the grid evaluated batched (torch.func.vmap)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from bncli.probes.base import buffer_copies, stacked_buffer_copies

Tensors = dict[str, torch.Tensor]
LossFn = Callable[..., torch.Tensor]

# bytes of parameters + activations per vmapped chunk of grid points, at most
CHUNK_BYTES = 1 << 28


def filter_directions(params: Mapping[str, torch.Tensor], seed: int) -> Tensors:
    """One random direction d over params, filter-normalized: each weight tensor (2-D or more:
    linear and conv weights) gets a Gaussian draw whose every filter (row along dim 0: an output
    unit or channel) is rescaled to that filter's norm in the weights, ‖d_f‖ = ‖w_f‖; 1-D
    parameters (biases, BN's γ and β) get zeros, as the paper does ("ignore biasbn").

    Drawn from torch.Generator(seed) on the CPU in float64, weight after weight in dict order:
    two arms with the same weight shapes (BN adds only 1-D parameters) get the same draws."""
    gen = torch.Generator().manual_seed(int(seed) % (1 << 63))
    out: Tensors = {}
    for name, w in params.items():
        if w.dim() < 2:
            out[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=gen, dtype=torch.float64)
        w64 = w.detach().double().cpu()
        dn = d.flatten(1).norm(dim=1)
        wn = w64.flatten(1).norm(dim=1)
        scale = wn / (dn + 1e-10)
        out[name] = (d * scale.view(-1, *([1] * (d.dim() - 1)))).to(w)
    return out


def surface_coords(points: int, span: float) -> list[float]:
    """`points` evenly spaced coordinates over [-span, span] (the centre is on the grid for odd points)."""
    if points == 1:
        return [0.0]
    return [-span + 2 * span * i / (points - 1) for i in range(points)]


def _chunk_size(theta: Tensors, x: torch.Tensor, n_points: int) -> int:
    width = sum(t.numel() for t in theta.values()) * 2 + x.numel() * 8
    return max(1, min(n_points, CHUNK_BYTES // max(1, width * x.element_size())))


def loss_surface(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    theta: Tensors,
    buffers: Mapping[str, torch.Tensor],
    directions: list[Tensors],
    coords: list[float],
    *,
    batched: bool = True,
    chunk: int | None = None,
) -> torch.Tensor:
    """L(θ + a·d₁ [+ b·d₂]) for every a [, b] in coords: a [P] or [P, P] tensor (a indexes rows),
    the model in whichever mode it is in (BN in training mode writes its running statistics into
    a copy of the buffers per point). Batched: vmap over grid points with functional_call, in
    chunks of `chunk` points (sized to CHUNK_BYTES when None); otherwise point by point (same
    numbers up to rounding). Nothing is written."""
    dims = len(directions)
    if dims not in (1, 2):
        raise ValueError(f"directions: 1 or 2, got {dims}")
    ref = next(iter(theta.values()))
    c = torch.tensor(coords, dtype=ref.dtype, device=ref.device)
    grid = c.view(-1, 1) if dims == 1 else torch.cartesian_prod(c, c)  # [P^dims, dims], row-major
    names = list(theta)
    dstack = {n: torch.stack([d[n] for d in directions]) for n in names}  # [dims, ...]

    def point(a: torch.Tensor, bufs: Tensors) -> torch.Tensor:
        params = {n: theta[n] + torch.tensordot(a, dstack[n], dims=1) for n in names}
        return loss_fn(functional_call(model, (params, bufs), (x,)), y)

    with torch.no_grad():
        if batched:
            size = chunk or _chunk_size(theta, x, grid.shape[0])
            parts = []
            for i in range(0, grid.shape[0], size):
                g = grid[i : i + size]
                parts.append(vmap(point, randomness="different")(g, stacked_buffer_copies(buffers, g.shape[0])))
            values = torch.cat(parts)
        else:
            values = torch.stack([point(a, buffer_copies(buffers)) for a in grid])
    values = values.detach()
    return values if dims == 1 else values.view(len(coords), len(coords))


def surface_summary(values: list[float] | list[list[float]], coords: list[float]) -> dict[str, Any]:
    """The numbers that summarize a surface: its loss at the centre (nearest grid point), min, max,
    range (max − min) and rise (max − centre: a sharpness figure within the span)."""
    flat = [v for row in values for v in (row if isinstance(row, list) else [row])]
    mid = min(range(len(coords)), key=lambda i: abs(coords[i]))
    centre = values[mid][mid] if isinstance(values[0], list) else values[mid]  # type: ignore[index]
    if not all(math.isfinite(v) for v in flat):
        return {"centre": centre, "min": math.inf, "max": math.inf, "range": math.inf, "rise": math.inf}
    lo, hi = min(flat), max(flat)
    return {"centre": float(centre), "min": lo, "max": hi, "range": hi - lo, "rise": hi - float(centre)}
