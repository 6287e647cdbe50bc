"""Run a batch: every job of every cell x command as ONE plan (identical jobs shared), each
finished job stored at once (`DIR/jobs/<key>.json`), results judged per cell, expectations
checked. `--resume` reuses stored jobs whose key matches."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bncli.batch.expand import Cell
from bncli.batch.expect import Outcome, evaluate
from bncli.batch.resume import job_path
from bncli.executors import execute
from bncli.executors.base import Executor, JobResult, Reporter
from bncli.plan import RunJob, plan
from bncli.results import SCHEMA_VERSION, CommandResult, RunRecord, clean


@dataclass
class Entry:
    """One cell x command: its jobs, and after the run its result, failures and expectations."""

    cell: Cell
    command: str
    jobs: list[RunJob]
    result: CommandResult | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)  # (job label, reason)
    missing: int = 0  # jobs not run (interrupted)
    outcomes: list[Outcome] = field(default_factory=list)
    path: str | None = None  # folder under --out

    @property
    def complete(self) -> bool:
        return not self.failures and not self.missing


@dataclass
class BatchRun:
    entries: list[Entry]
    interrupted: bool
    n_jobs: int  # distinct jobs
    n_reused: int
    wall_s: float
    batch_file: str
    command_line: str | None = None
    previous: list[dict[str, Any]] = field(default_factory=list)  # earlier runs of it (before --resume)
    rerun: dict[str, int] = field(default_factory=dict)  # stored jobs not reused: reason -> count
    interrupt_code: int = 130  # the command sets 143 / 129 after SIGTERM / SIGHUP

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for e in self.entries for o in e.outcomes]

    @property
    def n_failed_jobs(self) -> int:
        return len({lbl for e in self.entries for lbl, _ in e.failures})

    def exit_code(self) -> int:
        if self.interrupted:
            return self.interrupt_code
        if any(e.failures for e in self.entries):
            return 3
        return 1 if any(not o.passed and not o.skipped for o in self.outcomes) else 0

    def to_json(self) -> dict[str, Any]:
        from bncli import __version__

        outcomes = self.outcomes
        return clean({
            "schema_version": SCHEMA_VERSION,
            "kind": "batch",
            "bncli_version": __version__,
            "batch_file": self.batch_file,
            **({"command_line": self.command_line} if self.command_line else {}),
            "interrupted": self.interrupted,
            "exit_code": self.exit_code(),
            "counts": {
                "jobs": self.n_jobs, "reused": self.n_reused, "failed": self.n_failed_jobs,
                "rerun": sum(self.rerun.values()),
                "expectations": len(outcomes),
                "expectations_passed": sum(o.passed for o in outcomes),
                "expectations_skipped": sum(o.skipped for o in outcomes),
            },
            "wall_s": self.wall_s,
            **({"previous_runs": self.previous} if self.previous else {}),
            **({"rerun_reasons": dict(self.rerun)} if self.rerun else {}),
            "comparisons": [{
                "name": e.cell.name,
                "comparison": e.cell.comparison,
                "cell": e.cell.values,
                "command": e.command,
                "path": e.path,
                "n_jobs": len(e.jobs),
                "complete": e.complete,
                "failed_jobs": [{"run": lbl, "error": why} for lbl, why in e.failures],
                "missing_jobs": e.missing,
                "claims": [c.to_json() for c in e.result.claims] if e.result else [],
                "expectations": [o.to_json() for o in e.outcomes],
            } for e in self.entries],
            "expectations": [o.to_json() for o in outcomes],
        })


def entries_of(cells: list[Cell]) -> list[Entry]:
    from bncli.analyses import get_analysis

    return [Entry(c, cmd, plan(c.spec, get_analysis(cmd).name)) for c in cells for cmd in c.commands]


# ---------------------------------------------------------------- the job store (--out DIR/jobs)


def store_job(out: Path, job: RunJob, record: RunRecord) -> None:
    """Atomically store a finished job (with bncli's version and a digest: bncli.batch.resume).
    NaN and ±inf are kept (JSON's NaN/Infinity literals), so a resumed record is bitwise the
    record that was stored."""
    from bncli.batch.resume import job_document
    from bncli.io import atomic_write_text

    atomic_write_text(job_path(out, job), json.dumps(job_document(job, record), allow_nan=True) + "\n")


def load_job(out: Path, job: RunJob) -> RunRecord | None:
    """The stored record of `job` when it may be reused (bncli.batch.resume.check_stored)."""
    from bncli.batch.resume import check_stored

    return check_stored(out, job)[0]


def pending_jobs(cells: list[Cell], out: Path | None) -> int:
    """Distinct jobs a run would train: all of them, less those stored under `out` (--resume)."""
    unique = {j.key: j for e in entries_of(cells) for j in e.jobs}
    return sum(out is None or load_job(out, j) is None for j in unique.values())


def earlier_runs(out: Path) -> list[dict[str, Any]]:
    """What `out`'s batch.json says of the runs before this --resume: each one's command line,
    wall time and whether it was interrupted (kept beside the resume's own)."""
    from bncli.io import MAX_DOCUMENT_BYTES, read_bounded

    try:
        old = json.loads(read_bounded(out / "batch.json", MAX_DOCUMENT_BYTES))
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(old, dict):
        return []
    mine = {k: old.get(k) for k in ("command_line", "wall_s", "interrupted")}
    return [*old.get("previous_runs", []), mine]


# ---------------------------------------------------------------- running


def run_batch(
    cells: list[Cell],
    batch_file: str,
    executor: Executor | None = None,
    reporter: Reporter | None = None,
    out: Path | None = None,
    resume: bool = False,
    on_job: Callable[[JobResult], Any] | None = None,
) -> BatchRun:
    """Run every job of every cell x command once, judge each cell, check its expectations."""
    from bncli.analyses import get_analysis
    from bncli.pipeline import build_result, check_spec

    t0 = time.perf_counter()
    entries = entries_of(cells)
    # everything that can fail before training, for every cell, before the first job starts
    infos = {id(c): check_spec(c.spec, [s for s in (get_analysis(x).section for x in c.commands) if s])
             for c in cells}
    unique: dict[str, RunJob] = {}
    for e in entries:
        for j in e.jobs:
            unique.setdefault(j.key, j)
    done: dict[str, JobResult] = {}
    rerun: dict[str, int] = {}
    if resume and out is not None:
        from bncli.batch.resume import load_stored

        stored, reasons = load_stored(out, unique)
        done = {key: JobResult(unique[key], rec) for key, rec in stored.items()}
        rerun = dict(reasons)
    n_reused = len(done)

    def finished(res: JobResult) -> None:
        done[res.job.key] = res
        if out is not None and res.record is not None and not res.record.interrupted:
            store_job(out, res.job, res.record)
        if on_job is not None:
            on_job(res)

    todo = [j for k, j in unique.items() if k not in done]
    ex = execute(todo, executor, reporter, on_result=finished)
    for e in entries:
        records: list[RunRecord] = []
        for j in e.jobs:
            res = done.get(j.key)
            if res is None:
                e.missing += 1
            elif res.error is not None:
                e.failures.append((f"{e.command} {j.label}", res.error))
            elif res.record is not None:
                if res.record.interrupted:
                    e.missing += 1
                records.append(res.record)
        a = get_analysis(e.command)
        e.result = build_result(e.cell.spec, a, records, not e.complete, infos[id(e.cell)])
        mine = [x for x in e.cell.expect if target_command(e.cell, x) == e.command]
        if e.complete:
            e.outcomes = [evaluate(e.cell.name, e.command, x, e.result) for x in mine]
        elif not ex.interrupted:
            why = "; ".join(f"{lbl}: {r}" for lbl, r in e.failures[:3]) or "jobs missing"
            e.outcomes = [Outcome(e.cell.name, e.command, x, False, f"not evaluated: {why}") for x in mine]
    return BatchRun(entries, ex.interrupted, len(unique), n_reused, time.perf_counter() - t0, batch_file,
                    rerun=rerun)


def target_command(cell: Cell, e: Any) -> str:
    """The one command of a cell an expectation is checked against: the one it names, else the
    first that judges its claim or reports its metric, else the first."""
    from bncli.analyses import get_analysis
    from bncli.batch.expand import SUMMARY_METRICS

    if e.command:
        return e.command
    for c in cell.commands:
        a = get_analysis(c)
        if e.claim is not None and e.claim in a.claims:
            return c
        if e.metric is not None and (e.metric in SUMMARY_METRICS or e.metric in a.metrics):
            return c
    return cell.commands[0]
