"""The runner layer: the one place where jobs become records.

- `base`: the Runner interface (`group_key`, `run(jobs, data, progress) -> records`), grouping;
- `single`: SingleRunner (groups of one) and run_job;
- `build`: initial weights, arm models, the checks before training, records;
- `cache`: the in-process data cache and the one data key every executor uses.
"""

from __future__ import annotations

from bncli.runner.base import Runner, group_jobs, group_label
from bncli.runner.single import SingleRunner, run_job


def default_runner() -> Runner:
    return SingleRunner()


__all__ = ["Runner", "SingleRunner", "default_runner", "group_jobs", "group_label", "run_job"]
