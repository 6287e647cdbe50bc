"""Rich progress on stderr: one overall bar (runs done / total, elapsed, time left) and the
current run's steps (hidden when quiet or not a terminal)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RunsRemainingColumn(TimeRemainingColumn):
    """Time left. For the overall bar (whole runs, often minutes each) Rich's own estimate, from
    the last 30 s of progress, stays blank; this one is elapsed / runs done x runs left, from the
    first finished run on."""

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == "runs" and task.completed and task.total and task.elapsed:
            left = task.elapsed / task.completed * (task.total - task.completed)
            m, s = divmod(int(round(left)), 60)
            h, m = divmod(m, 60)
            return Text(f"{h:d}:{m:02d}:{s:02d}", style="progress.remaining")
        return super().render(task)


class RichReporter:
    """The overall bar (`start_plan`/`job_done`) and one bar per running run; a context manager
    that owns the live display."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            RunsRemainingColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self._task = None
        self._overall = None
        self.total_runs = 0

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start_plan(self, total: int) -> None:
        self.total_runs = total
        self._overall = self.progress.add_task("all runs", total=total, unit="runs")

    def job_done(self) -> None:
        if self._overall is not None:
            self.progress.advance(self._overall, 1)

    def start_run(self, label: str, total: int) -> None:
        self._task = self.progress.add_task(f"  {label}", total=total, unit="steps")

    def advance(self, n: int) -> None:
        if self._task is not None:
            self.progress.advance(self._task, n)

    def end_run(self) -> None:
        if self._task is not None:
            self.progress.remove_task(self._task)
            self._task = None
