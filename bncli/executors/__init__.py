"""Executors run a plan of RunJobs: serially here, in local worker processes, or on Ray."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bncli.executors.base import Execution, Executor, JobResult, Reporter
from bncli.executors.base import execute as _execute
from bncli.plan import RunJob
from bncli.runner.base import Runner


def make_executor(backend: str = "local", jobs: int = 1, address: str | None = None,
                  raise_errors: bool = True, threads: int | None = None, runner: Runner | None = None) -> Executor:
    """The executor a command asked for: `local` with 1 job runs here (per-step progress),
    with N jobs in N worker processes; `ray` on a private local Ray or the cluster at `address`."""
    if backend == "ray":
        from bncli.executors.ray import make_ray_executor

        return make_ray_executor(address, threads_per_job=threads, runner=runner)
    if jobs > 1:
        from bncli.executors.local import LocalExecutor

        return LocalExecutor(jobs, threads=threads, runner=runner)
    from bncli.executors.serial import SerialExecutor

    return SerialExecutor(raise_errors=raise_errors, runner=runner)


def execute(
    jobs: Sequence[RunJob],
    executor: Executor | None = None,
    reporter: Reporter | None = None,
    on_result: Callable[[JobResult], Any] | None = None,
) -> Execution:
    """Run a plan on `executor` (default: serially here, with the default runner), in the groups
    its runner makes. Ctrl-C keeps every finished result; identical jobs run once."""
    if executor is None:
        from bncli.executors.serial import SerialExecutor

        executor = SerialExecutor()
    return _execute(jobs, executor, reporter, on_result)


__all__ = ["Execution", "Executor", "JobResult", "Reporter", "execute", "make_executor"]
