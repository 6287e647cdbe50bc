"""The run header line: what a user checks before waiting for a run."""

from __future__ import annotations

from typing import Any


def describe(spec: Any, data: Any, threads: str) -> str:
    """One line a user can check: the arms x the learning rates x seeds, the model's shape, the data split, the
    threads each run uses (`threads`: bncli.runtime.threads_label's words; render/ computes nothing
    about the runtime)."""
    from bncli.models.registry import get_family

    shape = get_family(spec.model.kind).describe(spec.model, tuple(data.input_shape), data.n_out)
    arms = [a.name for a in spec.arms]
    lrs = spec.train.lr
    lr = (f"lr {', '.join(f'{v:g}' for v in lrs)}" if len(lrs) <= 4
          else f"{len(lrs)} lrs {min(lrs):g}…{max(lrs):g}")
    seeds = f"{spec.seeds} seed{'s' if spec.seeds != 1 else ''}"
    return (
        f"arms {', '.join(arms)} × {lr} × {seeds}; {shape}; {spec.data.source} {data.task}, "
        f"{data.n_train} train / {data.x_test.shape[0]} held-out; {spec.train.steps} steps of "
        f"{spec.train.optimizer}, batch {min(spec.train.batch_size, data.n_train)}; threads: "
        f"{threads}"
    )
