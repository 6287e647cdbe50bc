"""A Rich progress bar on stderr that the experiment reports to (hidden when quiet or piped)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichReporter:
    """One bar per run; a context manager that owns the live display."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self._task = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start_run(self, label: str, total: int) -> None:
        self._task = self.progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self.progress.advance(self._task, n)

    def end_run(self) -> None:
        if self._task is not None:
            self.progress.remove_task(self._task)
            self._task = None
