"""Probes measured for a whole fused group at once: the due step's stacked context.

A probe with a group form has `grouped()` (whether the form applies to its settings) and the
static methods `group_before_update(probes, step)` / `group_after_update(probes, step)`: one call
for every due member of a fused group (bncli.runner.fused), `probes[j]` the probe of member
`step.members[j]`. The group form computes the per-member probe's definitions on the stacked
model (bncli.runner.fused_mlp.StackedMLP.functional) without a per-member Net; it appends to each
member's probe what its per-member form would (equal in float64 to ~1e-14: tests/test_group_probes.py).
It is functional: no parameter, gradient, buffer or RNG state of the group is touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def member_losses(out: Tensor, y: Tensor, task: str) -> Tensor:
    """Per-point mean loss [N] of out [N, B, C] against y [N, B, ...]: bncli.models.loss_fn_for's."""
    k, n = out.shape[0], out.shape[1]
    if task == "classification" and n > 1 and out.transpose(1, 2).is_contiguous():
        # a feature-major head ([N, C, B] in memory, bncli.runner.fused_mlp._linear): the classes
        # as cross_entropy's dim 1, no copy (2x faster than [N·B, C] rows of 10 classes)
        return F.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(1)
    if task == "classification":
        return F.cross_entropy(out.reshape(k * n, -1), y.reshape(k * n), reduction="none").view(k, n).mean(1)
    return (out - y).pow(2).reshape(k, -1).mean(1)


@dataclass
class GroupStep:
    """One due step of a fused group: every member's batch, loss and BN buffers from before the
    step's forward, stacked [K, ...]; `members` are the due, live members (a diverged one is left
    out: masked, never measured)."""

    model: Any  # StackedMLP: params [K, ...] at θ_t with this step's gradients in .grad
    step: int
    members: list[int]
    x: Tensor  # [K, B, ...]
    y: Tensor  # [K, B, ...]
    losses: Tensor  # [K]: this step's training loss per member
    buffers_before: dict[str, Tensor]  # [K, ...]
    lrs: list[float]  # this update's lr per member (K)
    task: str
    noise_seeds: list[int | None] | None = None

    def loss_of(self, out: Tensor, y: Tensor) -> Tensor:
        return member_losses(out, y, self.task)

    def buffer_copies(self, idx: Tensor | None = None, repeat: int = 1) -> dict[str, Tensor]:
        """Copies of the members' buffers from before the step ([len(idx)·repeat, ...]): training-
        mode normalization writes its running statistics into them."""
        out = {}
        for n, b in self.buffers_before.items():
            t = b if idx is None else b.index_select(0, idx)
            out[n] = (t.repeat_interleave(repeat, 0) if repeat > 1 else t.clone()).contiguous()
        return out

    def index(self) -> Tensor:
        return torch.tensor(self.members, dtype=torch.long, device=self.x.device)
