"""The serial executor: one group after another in this process, with per-step progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bncli.errors import BncliError
from bncli.executors.base import JobResult, Reporter
from bncli.plan import RunJob
from bncli.runner import Runner, default_runner, group_label


class SerialExecutor:
    """Runs each group here, in order, with `runner` (default: bncli.runner.default_runner). A
    group that raises becomes failed JobResults unless `raise_errors` (what single subcommands
    want: the error is the command's error)."""

    def __init__(self, raise_errors: bool = True, probe_factory: Callable[..., Sequence[Any]] | None = None,
                 runner: Runner | None = None) -> None:
        self.raise_errors = raise_errors
        self.runner = runner if runner is not None else default_runner(probe_factory)

    def run(self, groups: Sequence[Sequence[RunJob]], reporter: Reporter | None = None) -> Iterator[JobResult]:
        for group in groups:
            if reporter is not None:
                reporter.start_run(group_label(group), group[0].spec.train.steps * len(group))
            try:
                records = self.runner.run(list(group), None, reporter.advance if reporter is not None else None)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                if self.raise_errors or (isinstance(exc, BncliError) and exc.exit_code == 2):
                    raise
                for job in group:
                    yield JobResult(job, None, f"{type(exc).__name__}: {exc}", exc)
                continue
            finally:
                if reporter is not None:
                    reporter.end_run()
            for job, record in zip(group, records):
                yield JobResult(job, record)
