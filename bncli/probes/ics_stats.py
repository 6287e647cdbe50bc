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


# ---- the same statistics for K members at once (a fused group's stacked sites [K, N, C]): the
# same reductions per member, so equal to the per-member forms up to the order of float64 sums


def stacked_moments(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """unit_moments of each member of a [K, N, C] stack: ([K, C], [K, C])."""
    a = a.double()
    return a.mean(1), a.var(1, unbiased=False)


def stacked_percentiles(a: torch.Tensor, units: list[int]) -> torch.Tensor:
    """unit_percentiles of each member of a [K, N, C] stack: [len(PERCENTILES), K, len(units)]."""
    q = torch.tensor(PERCENTILES, dtype=torch.float64, device=a.device)
    return torch.quantile(a[:, :, units].double(), q, dim=1)


def stacked_wasserstein1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """wasserstein1 of each member of two [K, N, C] stacks: [K, C]."""
    if a.shape != b.shape:
        raise ValueError(
            f"wasserstein1 needs equal-size samples, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device.type == "cpu":
        a_sorted = torch.from_numpy(np.sort(a.detach().numpy(), axis=1)).double()
        b_sorted = torch.from_numpy(np.sort(b.detach().numpy(), axis=1)).double()
    else:
        a_sorted = torch.sort(a.detach(), dim=1).values.double()
        b_sorted = torch.sort(b.detach(), dim=1).values.double()
    return (a_sorted - b_sorted).abs().mean(1)


def stacked_shift_stats(before: torch.Tensor, after: torch.Tensor,
                        units: list[int] | None = None) -> dict[str, list[float]]:
    """shift_stats of each member of two [K, N, C] stacks: {statistic: K values}."""
    mu0, var0 = stacked_moments(before)
    mu1, var1 = stacked_moments(after)
    out = {
        "d_mean": (mu1 - mu0).abs().mean(1).tolist(),
        "d_var": (var1 - var0).abs().mean(1).tolist(),
        "w1": stacked_wasserstein1(before, after).mean(1).tolist(),
    }
    if units:
        d = (stacked_percentiles(after, units) - stacked_percentiles(before, units)).abs()
        out["d_pct"] = d.permute(1, 0, 2).reshape(d.shape[1], -1).mean(1).tolist()
    return out
