"""The executor interface: take a plan, yield each job's outcome as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bncli.plan import RunJob
from bncli.results import RunRecord


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
    """Runs jobs and yields a JobResult per job as each finishes (in any order). A job that raises
    yields a JobResult with `error`; Ctrl-C (KeyboardInterrupt) propagates after the finished
    results were yielded."""

    def run(self, jobs: Sequence[RunJob], reporter: Reporter | None = None) -> Iterator[JobResult]: ...


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
    executor: Executor | None = None,
    reporter: Reporter | None = None,
    on_result: Callable[[JobResult], Any] | None = None,
) -> Execution:
    """Run a plan on an executor (the serial one by default). Ctrl-C keeps every finished result.
    Jobs with the same content key run once; every copy gets the record."""
    from bncli.executors.serial import SerialExecutor

    executor = executor or SerialExecutor()
    jobs = list(jobs)
    unique: dict[str, RunJob] = {}
    for j in jobs:
        unique.setdefault(j.key, j)
    results: dict[int, JobResult] = {}
    interrupted = False
    if reporter is not None and hasattr(reporter, "start_plan"):
        reporter.start_plan(len(unique))
    try:
        for res in executor.run(list(unique.values()), reporter):
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
