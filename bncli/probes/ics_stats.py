"""Per-unit distribution statistics for measure-ics (C2): moments, percentiles, 1-Wasserstein."""

from __future__ import annotations

import numpy as np
import torch

PERCENTILES = (0.15, 0.50, 0.85)  # Ioffe & Szegedy 2015 Fig 1b-c


def unit_moments(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit mean and (biased, like BN's batch statistics) variance of (N, C) samples."""
    a = a.double()
    return a.mean(0), a.var(0, unbiased=False)


def unit_percentiles(a: torch.Tensor, units: list[int]) -> torch.Tensor:
    """(len(PERCENTILES), len(units)): linear-interpolated percentiles of the tracked units."""
    q = torch.tensor(PERCENTILES, dtype=torch.float64, device=a.device)
    return torch.quantile(a[:, units].double(), q, dim=0)


def wasserstein1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-unit 1-Wasserstein distance between two equal-size samples (N, C) -> (C,).

    For two empirical distributions with the same number of equally weighted points the optimal
    coupling matches order statistics, so W1 = mean_k |a_(k) - b_(k)| (what scipy computes).
    """
    if a.shape != b.shape:
        raise ValueError(
            f"wasserstein1 needs equal-size samples, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device.type == "cpu":
        # numpy's sort is ~10x faster than torch's on the CPU for these (N, C) blocks
        a_sorted = torch.from_numpy(np.sort(a.detach().numpy(), axis=0)).double()
        b_sorted = torch.from_numpy(np.sort(b.detach().numpy(), axis=0)).double()
    else:
        a_sorted = torch.sort(a.detach(), dim=0).values.double()
        b_sorted = torch.sort(b.detach(), dim=0).values.double()
    return (a_sorted - b_sorted).abs().mean(0)


def shift_stats(before: torch.Tensor, after: torch.Tensor, units: list[int] | None = None) -> dict[str, float]:
    """Step-to-step shift of one site: |Δμ|, |Δσ²| and W1 averaged over units (Santurkar Fig 8),
    and `d_pct`, the mean |Δ| of the tracked units' 15/50/85th percentiles (Ioffe Fig 1).

    BN in training mode fixes each unit's batch mean and variance by construction, so only W1 and
    the percentiles see a change of the distribution's shape there."""
    mu0, var0 = unit_moments(before)
    mu1, var1 = unit_moments(after)
    out = {
        "d_mean": float((mu1 - mu0).abs().mean()),
        "d_var": float((var1 - var0).abs().mean()),
        "w1": float(wasserstein1(before, after).mean()),
    }
    if units:
        out["d_pct"] = float((unit_percentiles(after, units) - unit_percentiles(before, units)).abs().mean())
    return out


# ---- the same statistics for many samples at once (a fused group's stacked sites, [..., N, C]:
# members, and layers of one width): the same reductions per sample, so equal to the per-member
# forms up to the order of float64 sums


def stacked_moments(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """unit_moments of each sample of a [..., N, C] stack: ([..., C], [..., C])."""
    a = a.double()
    return a.mean(-2), a.var(-2, unbiased=False)


def stacked_percentiles(a: torch.Tensor, units: list[int]) -> torch.Tensor:
    """unit_percentiles of each sample of a [..., N, C] stack: [len(PERCENTILES), ..., len(units)]."""
    q = torch.tensor(PERCENTILES, dtype=torch.float64, device=a.device)
    return torch.quantile(a[..., units].double(), q, dim=-2)


def stacked_wasserstein1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """wasserstein1 of each sample of two [..., N, C] stacks: [..., C]."""
    if a.shape != b.shape:
        raise ValueError(
            f"wasserstein1 needs equal-size samples, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device.type == "cpu":
        a_sorted = torch.from_numpy(np.sort(a.detach().numpy(), axis=-2)).double()
        b_sorted = torch.from_numpy(np.sort(b.detach().numpy(), axis=-2)).double()
    else:
        a_sorted = torch.sort(a.detach(), dim=-2).values.double()
        b_sorted = torch.sort(b.detach(), dim=-2).values.double()
    return (a_sorted - b_sorted).abs().mean(-2)


def stacked_shift_stats(before: torch.Tensor, after: torch.Tensor,
                        units: list[int] | None = None) -> dict[str, torch.Tensor]:
    """shift_stats of each sample of two [..., N, C] stacks: {statistic: [...] values}."""
    mu0, var0 = stacked_moments(before)
    mu1, var1 = stacked_moments(after)
    out = {
        "d_mean": (mu1 - mu0).abs().mean(-1),
        "d_var": (var1 - var0).abs().mean(-1),
        "w1": stacked_wasserstein1(before, after).mean(-1),
    }
    if units:
        d = (stacked_percentiles(after, units) - stacked_percentiles(before, units)).abs()  # [Q, ..., U]
        out["d_pct"] = d.movedim(0, -2).flatten(-2).mean(-1)
    return out
