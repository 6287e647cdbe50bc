"""The run header line: what a user checks before waiting for a run."""

from __future__ import annotations

from typing import Any


def describe(spec: Any, data: Any, threads: str) -> str:
    """One line a user can check: arms x lrs x seeds, the model's shape, the data split, the
    threads each run uses (`threads`: bncli.runtime.threads_label's words; render/ computes nothing
    about the runtime)."""
    from bncli.models.registry import get_family

    shape = get_family(spec.model.kind).describe(spec.model, tuple(data.input_shape), data.n_out)
    return (
        f"{len(spec.arms)} arms ({', '.join(a.name for a in spec.arms)}) × {len(spec.train.lr)} "
        f"learning rate(s) × {spec.seeds} seed(s); {shape}; {spec.data.source} {data.task}, "
        f"{data.n_train} train / {data.x_test.shape[0]} held-out; {spec.train.steps} steps of "
        f"{spec.train.optimizer}, batch {min(spec.train.batch_size, data.n_train)}; threads: "
        f"{threads}"
    )
