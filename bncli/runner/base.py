"""The runner interface: a Runner trains groups of jobs and returns one record per job.

`group_key(job)` says which jobs may be trained together (equal keys form a group, in plan
order); `run(jobs, data, progress)` trains one group. Executors only move groups (a loop here,
worker processes, Ray tasks); every one of them yields one result per job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bncli.plan import RunJob
from bncli.results import RunRecord

Progress = Callable[[int], None]  # steps done since the last call


class Runner(Protocol):
    name: str

    def group_key(self, job: RunJob) -> str: ...

    def run(self, jobs: Sequence[RunJob], data: Any = None, progress: Progress | None = None) -> list[RunRecord]:
        """Train a group; one record per job, in the group's order. `data`: the group's data on
        its device (None: from this process's cache). Raises for the whole group."""
        ...


def group_jobs(jobs: Sequence[RunJob], runner: Runner) -> list[list[RunJob]]:
    """Jobs with equal group keys in groups, each group in plan order, groups by first member."""
    groups: dict[str, list[RunJob]] = {}
    for job in jobs:
        groups.setdefault(runner.group_key(job), []).append(job)
    return list(groups.values())


def group_label(jobs: Sequence[RunJob]) -> str:
    """A progress label for a group: its one job's, or the shared part and a count."""
    if len(jobs) == 1:
        return jobs[0].label
    arms = sorted({j.arm for j in jobs})
    return f"{', '.join(arms)} × {len(jobs)} runs (fused)"
