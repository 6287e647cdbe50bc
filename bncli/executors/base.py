"""The executor interface: take a plan's groups of jobs (bncli.runner groups them), run each group
with the executor's runner, yield each job's outcome as its group finishes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bncli.plan import RunJob
from bncli.results import RunRecord
from bncli.runner.base import Runner, group_jobs


class Reporter(Protocol):
    """Progress sink (the CLI gives Rich bars on stderr; tests give nothing)."""

    def start_plan(self, total: int) -> None: ...
    def start_run(self, label: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def end_run(self) -> None: ...
    def job_done(self) -> None: ...


@dataclass
class JobResult:
    """A finished job: its record, or why it failed (an exception, or a worker that died)."""

    job: RunJob
    record: RunRecord | None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)


class Executor(Protocol):
    """Runs groups of jobs with its `runner` and yields a JobResult per job as each group finishes
    (groups in any order). A group that raises yields a JobResult with `error` for each of its
    jobs; Ctrl-C (KeyboardInterrupt) propagates after the finished results were yielded."""

    runner: Runner

    def run(self, groups: Sequence[Sequence[RunJob]], reporter: Reporter | None = None) -> Iterator[JobResult]: ...


@dataclass
class Execution:
    """Everything a plan produced: records in plan order, failures, and whether it was cut short."""

    jobs: list[RunJob]
    results: dict[int, JobResult]
    interrupted: bool

    @property
    def records(self) -> list[RunRecord]:
        return [self.results[i].record for i in sorted(self.results)  # type: ignore[misc]
                if self.results[i].record is not None]

    @property
    def failures(self) -> list[JobResult]:
        return [self.results[i] for i in sorted(self.results) if self.results[i].error is not None]


def execute(
    jobs: Sequence[RunJob],
    executor: Executor,
    reporter: Reporter | None = None,
    on_result: Callable[[JobResult], Any] | None = None,
) -> Execution:
    """Run a plan on an executor, in the groups its runner makes.
    Ctrl-C keeps every finished result. Jobs with the same content key run once; every copy gets
    the record."""
    jobs = list(jobs)
    unique: dict[str, RunJob] = {}
    for j in jobs:
        unique.setdefault(j.key, j)
    results: dict[int, JobResult] = {}
    interrupted = False
    if reporter is not None and hasattr(reporter, "start_plan"):
        reporter.start_plan(len(unique))
    try:
        for res in executor.run(group_jobs(list(unique.values()), executor.runner), reporter):
            key = res.job.key
            for i, j in enumerate(jobs):
                if j.key == key:
                    results[i] = JobResult(j, res.record, res.error, res.exception)
            if on_result is not None:
                on_result(res)
            if reporter is not None and hasattr(reporter, "job_done"):
                reporter.job_done()
            if res.record is not None and res.record.interrupted:
                interrupted = True
                break
    except KeyboardInterrupt:
        interrupted = True
    return Execution(jobs, results, interrupted)
