"""Per-unit distribution statistics for measure-ics (C2): moments, percentiles, 1-Wasserstein."""

from __future__ import annotations

import numpy as np
import torch

PERCENTILES = (0.15, 0.50, 0.85)  # Ioffe & Szegedy 2015 Fig 1b-c


def unit_moments(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit mean and (biased, like BN's batch statistics) variance of (N, C) samples; of
    each sample of a [..., N, C] stack (a fused group's members) at once: ([..., C], [..., C])."""
    a = a.double()
    return a.mean(-2), a.var(-2, unbiased=False)


def unit_percentiles(a: torch.Tensor, units: list[int]) -> torch.Tensor:
    """(len(PERCENTILES), len(units)): linear-interpolated percentiles of the tracked units; for a
    [..., N, C] stack, [len(PERCENTILES), ..., len(units)]."""
    q = torch.tensor(PERCENTILES, dtype=torch.float64, device=a.device)
    return torch.quantile(a[..., units].double(), q, dim=-2)


def wasserstein1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-unit 1-Wasserstein distance between two equal-size samples (N, C) -> (C,); for two
    [..., N, C] stacks, per sample: [..., C].

    For two empirical distributions with the same number of equally weighted points the optimal
    coupling matches order statistics, so W1 = mean_k |a_(k) - b_(k)| (what scipy computes).
    """
    if a.shape != b.shape:
        raise ValueError(
            f"wasserstein1 needs equal-size samples, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device.type == "cpu":
        # numpy's sort is ~10x faster than torch's on the CPU for these (N, C) blocks
        a_sorted = torch.from_numpy(np.sort(a.detach().numpy(), axis=-2)).double()
        b_sorted = torch.from_numpy(np.sort(b.detach().numpy(), axis=-2)).double()
    else:
        a_sorted = torch.sort(a.detach(), dim=-2).values.double()
        b_sorted = torch.sort(b.detach(), dim=-2).values.double()
    return (a_sorted - b_sorted).abs().mean(-2)


def stacked_shift_stats(before: torch.Tensor, after: torch.Tensor,
                        units: list[int] | None = None) -> dict[str, torch.Tensor]:
    """shift_stats of each sample of two [..., N, C] stacks (a fused group's members): {statistic:
    [...] values}."""
    mu0, var0 = unit_moments(before)
    mu1, var1 = unit_moments(after)
    out = {
        "d_mean": (mu1 - mu0).abs().mean(-1),
        "d_var": (var1 - var0).abs().mean(-1),
        "w1": wasserstein1(before, after).mean(-1),
    }
    if units:
        d = (unit_percentiles(after, units) - unit_percentiles(before, units)).abs()  # [Q, ..., U]
        out["d_pct"] = d.movedim(0, -2).flatten(-2).mean(-1)
    return out


def shift_stats(before: torch.Tensor, after: torch.Tensor, units: list[int] | None = None) -> dict[str, float]:
    """Step-to-step shift of one site: |Δμ|, |Δσ²| and W1 averaged over units (Santurkar Fig 8),
    and `d_pct`, the mean |Δ| of the tracked units' 15/50/85th percentiles (Ioffe Fig 1).

    BN in training mode fixes each unit's batch mean and variance by construction, so only W1 and
    the percentiles see a change of the distribution's shape there."""
    return {k: float(v) for k, v in stacked_shift_stats(before, after, units).items()}


# the group forms' names (bncli.probes.ics): the same functions, which take any leading dims
stacked_moments, stacked_percentiles, stacked_wasserstein1 = unit_moments, unit_percentiles, wasserstein1
