"""The runner layer: the one place where jobs become records.

- `base`: the Runner interface (`group_key`, `run(jobs, data, progress) -> records`), grouping;
- `single`: SingleRunner (groups of one) and run_job;
- `build`: initial weights, arm models, the checks before training, records;
- `fused`: FusedRunner: the seeds x lrs of an arm as one batched model (numerics: fused);
- `cache`: the in-process data cache and the one data key every executor uses.
"""

from __future__ import annotations

from typing import Any

from bncli.runner.base import Runner, group_jobs, group_label
from bncli.runner.single import SingleRunner, run_job


def default_runner(probe_factory: Any = None) -> Runner:
    """What executors use unless told: FusedRunner (it trains single jobs alone too); with a
    `probe_factory` (tests, benchmarks: probes of unknown fusability) every job alone."""
    if probe_factory is not None:
        return SingleRunner(probe_factory)
    from bncli.runner.fused import FusedRunner

    return FusedRunner()


__all__ = ["Runner", "SingleRunner", "default_runner", "group_jobs", "group_label", "run_job"]
