"""Executors run a plan of RunJobs: serially here, in local worker processes, or on Ray."""

from __future__ import annotations

from bncli.executors.base import Execution, Executor, JobResult, Reporter, execute


def make_executor(backend: str = "local", jobs: int = 1, address: str | None = None,
                  raise_errors: bool = True, threads: int | None = None) -> Executor:
    """The executor a command asked for: `local` with 1 job runs here (per-step progress),
    with N jobs in N worker processes; `ray` on a private local Ray or the cluster at `address`."""
    if backend == "ray":
        from bncli.executors.ray import make_ray_executor

        return make_ray_executor(address, threads_per_job=threads)
    if jobs > 1:
        from bncli.executors.local import LocalExecutor

        return LocalExecutor(jobs, threads=threads)
    from bncli.executors.serial import SerialExecutor

    return SerialExecutor(raise_errors=raise_errors)


__all__ = ["Execution", "Executor", "JobResult", "Reporter", "execute", "make_executor"]
