"""The serial executor: one job after another in this process, with per-step progress."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bncli.errors import BncliError
from bncli.executors.base import JobResult, Reporter
from bncli.plan import RunJob, run_job


class SerialExecutor:
    """Runs each job here, in order. A job that raises becomes a failed JobResult unless
    `raise_errors` (what single subcommands want: the error is the command's error)."""

    def __init__(self, raise_errors: bool = True, probe_factory=None) -> None:
        self.raise_errors = raise_errors
        self.probe_factory = probe_factory

    def run(self, jobs: Sequence[RunJob], reporter: Reporter | None = None) -> Iterator[JobResult]:
        for job in jobs:
            if reporter is not None:
                reporter.start_run(job.label, job.spec.train.steps)
            try:
                record = run_job(job, probe_factory=self.probe_factory,
                                 on_progress=reporter.advance if reporter is not None else None)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                if self.raise_errors or (isinstance(exc, BncliError) and exc.exit_code == 2):
                    raise
                yield JobResult(job, None, f"{type(exc).__name__}: {exc}", exc)
                continue
            finally:
                if reporter is not None:
                    reporter.end_run()
            yield JobResult(job, record)
