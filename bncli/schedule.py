"""Learning-rate schedules: the lr of update `step` (0-based) as a pure function of the train
spec, the run's base lr and the step (no torch: every arm and executor computes the same)."""

from __future__ import annotations

import math
from typing import Any


def scheduled(train: Any) -> bool:
    """Whether the lr changes over the run (constant with no warmup: the loop never touches it)."""
    return train.schedule != "constant" or train.warmup_steps > 0


def lr_at(train: Any, base_lr: float, step: int) -> float:
    """Linear warmup from base_lr / warmup_steps over the first `warmup_steps` updates, then
    constant, step (× gamma at each milestone, counted in updates) or cosine (from base_lr to 0
    over the steps after warmup)."""
    w = train.warmup_steps
    if step < w:
        return base_lr * (step + 1) / w
    if train.schedule == "step":
        return base_lr * train.gamma ** sum(1 for m in train.milestones if step >= m)
    if train.schedule == "cosine":
        span = max(1, train.steps - w)
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step - w, span) / span))
    return base_lr
