"""`batch --resume`: a stored job (`DIR/jobs/<key>.json`) is reused only when it is whole, unedited,
written by a compatible bncli, and its record fits its job; anything else is rerun, with the reason.

A job file holds {format, bncli_version, key, label, analysis, digest, record}. `digest` is a
SHA-256 of the key and the record as written: a number edited by hand (which could turn a failing
expectation into a pass) or a record copied from another job no longer matches it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from bncli.claim_types import plain
from bncli.io import is_regular_file
from bncli.plan import JOB_FORMAT, RunJob
from bncli.results import RunRecord

MAX_JOB_BYTES = 256 << 20  # a job file larger than this is not one bncli wrote


def job_path(out: Path, job: RunJob) -> Path:
    return out / "jobs" / f"{job.key}.json"


def _digest(key: str, record: Any) -> str:
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(f"{key}\n{text}".encode()).hexdigest()


def job_document(job: RunJob, record: RunRecord) -> dict[str, Any]:
    from bncli import __version__

    rec = plain(record)  # dataclasses.asdict's result, faster
    return {"format": JOB_FORMAT, "bncli_version": __version__, "key": job.key, "label": job.label,
            "analysis": job.analysis, "digest": _digest(job.key, rec), "record": rec}


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _fits(job: RunJob, rec: RunRecord) -> str | None:
    """Why the record does not belong to its job (None: it does)."""
    if (rec.arm, rec.lr, rec.seed) != (job.arm, job.lr, job.seed):
        return "its arm, lr or seed is another job's"
    steps = job.spec.train.steps
    if not isinstance(rec.steps, list) or not all(isinstance(s, int) and not isinstance(s, bool)
                                                  for s in rec.steps):
        return "its steps are not a list of integers"
    if any(b <= a for a, b in zip(rec.steps, rec.steps[1:])) or any(s < 0 or s > steps for s in rec.steps):
        return "its steps are not increasing within the run"
    n = len(rec.steps)
    for name in ("train_loss", "train_eval_loss", "train_acc", "test_loss", "test_acc"):
        series = getattr(rec, name)
        if not isinstance(series, list) or len(series) != n:
            return f"{name} does not have one value per step"
        if not all(_is_num(v) or (v is None and name.endswith("acc")) for v in series):
            return f"{name} holds a value that is not a number"
    if not isinstance(rec.steps_done, int) or isinstance(rec.steps_done, bool) or not 0 <= rec.steps_done <= steps:
        return "steps_done is not within the run"
    if rec.diverged_at is None and rec.steps_done != steps:
        return f"it ran {rec.steps_done} of {steps} steps"
    if rec.diverged_at is not None and (not isinstance(rec.diverged_at, int) or isinstance(rec.diverged_at, bool)):
        return "diverged_at is not a step"
    if not _is_num(rec.wall_s) or (isinstance(rec.wall_s, float) and math.isnan(rec.wall_s)):
        return "wall_s is not a number"
    if not isinstance(rec.probes, dict):
        return "probes is not a mapping"
    return None


def check_stored(out: Path, job: RunJob) -> tuple[RunRecord | None, str | None]:
    """(the stored record, None) when it may be reused; (None, why not) when it must be rerun;
    (None, None) when nothing is stored for the job."""
    from bncli import __version__

    p = job_path(out, job)
    if not p.exists() and not p.is_symlink():
        return None, None
    if not is_regular_file(p):
        return None, "not a regular file"
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_JOB_BYTES + 1)
        if len(data) > MAX_JOB_BYTES:
            return None, "too large to be a job file"
        doc = json.loads(data.decode("utf-8"))
    except (OSError, ValueError):
        return None, "unreadable or not JSON"
    if not isinstance(doc, dict) or not isinstance(doc.get("record"), dict):
        return None, "not a job file"
    if doc.get("format") != JOB_FORMAT or doc.get("bncli_version") != __version__:
        return None, "written by another bncli version"
    if doc.get("key") != job.key:
        return None, "another job's file"
    if doc.get("digest") != _digest(job.key, doc["record"]):
        return None, "edited after it was written"
    try:
        rec = RunRecord.from_json(doc["record"])
    except (TypeError, ValueError, KeyError):
        return None, "not a whole record"
    if rec.interrupted:
        return None, "interrupted"
    why = _fits(job, rec)
    return (None, f"record does not fit its job: {why}") if why else (rec, None)


def load_stored(out: Path, jobs: dict[str, RunJob]) -> tuple[dict[str, RunRecord], Counter[str]]:
    """The reusable records of `jobs` (by key) and, per reason, how many stored ones are rerun."""
    reused: dict[str, RunRecord] = {}
    rerun: Counter[str] = Counter()
    for key, j in jobs.items():
        rec, why = check_stored(out, j)
        if rec is not None:
            reused[key] = rec
        elif why is not None:
            rerun[why] += 1
    return reused, rerun
