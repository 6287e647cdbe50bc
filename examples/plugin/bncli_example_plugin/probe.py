"""The gradient noise scale probe (torch): on a fixed probe batch of B examples, the gradient G_B
of the whole batch and the mean squared norm of the gradients of its k = B/b disjoint small
batches of b examples give (McCandlish et al. 2018, App. A.1)

    |G|²  ≈ (B|G_B|² − b|G_b|²)/(B − b),   tr Σ ≈ (|G_b|² − |G_B|²)/(1/b − 1/B),
    B_simple = tr Σ / |G|².

Measuring changes nothing: parameters, gradients, buffers and RNG are put back (`measuring`)."""

from __future__ import annotations

import math
from typing import Any

import torch

from bncli.probes.base import ProbeBase, measuring


class GnsProbe(ProbeBase):
    name = "gns"

    def __init__(self, every: int, x: torch.Tensor, y: torch.Tensor, small: int) -> None:
        super().__init__(every)
        self.x, self.y = x, y
        self.small = max(1, min(small, int(x.shape[0]) // 2))
        self.steps: list[int] = []
        self.rows: list[dict[str, float]] = []

    def _sq_grad(self, ctx: Any, x: torch.Tensor, y: torch.Tensor) -> float:
        model = ctx.run.model
        params = [p for p in model.parameters() if p.requires_grad]
        loss = ctx.run.loss_fn(model(x), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return float(sum((g.double() ** 2).sum() for g in grads if g is not None))

    def before_update(self, ctx: Any) -> None:
        model = ctx.run.model
        big, b = int(self.x.shape[0]), self.small
        k = big // b
        with measuring(model, ctx.run.device), torch.enable_grad():
            g_big = self._sq_grad(ctx, self.x[: k * b], self.y[: k * b])
            g_small = sum(self._sq_grad(ctx, self.x[i * b:(i + 1) * b], self.y[i * b:(i + 1) * b])
                          for i in range(k)) / k
        big = k * b
        g2 = (big * g_big - b * g_small) / (big - b)
        tr = (g_small - g_big) / (1 / b - 1 / big)
        self.steps.append(ctx.step)
        self.rows.append({"grad_sq": g2, "trace": tr,
                          "b_simple": tr / g2 if g2 > 0 and math.isfinite(tr) else math.nan})

    def result(self) -> dict[str, Any]:
        return {"steps": self.steps, **{m: [r[m] for r in self.rows] for m in ("grad_sq", "trace", "b_simple")},
                "probe_size": int(self.x.shape[0]), "small": self.small}


def make_probe(spec: Any, arm: Any, lr: float, seed: int, data: Any) -> GnsProbe:
    """The registry's factory: (spec, arm, lr, seed, data) -> the probe."""
    cfg = spec.analysis.gns
    x, y = data.probe_batch(cfg.probe_size)
    return GnsProbe(cfg.every, x, y, cfg.small)
