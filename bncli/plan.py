"""The run plan: a RunJob is one (resolved spec, analysis, arm, lr, seed) value with a stable
content key; run_job(job) trains it with its analysis's probes and returns a plain RunRecord.

Initial weights and batch order are functions of (spec, seed) only, so any executor (a loop, a
process pool, Ray) gives bitwise the same record for the same job and thread count.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bncli.spec import Spec, VerdictSpec

# bump when a change makes stored job results (batch --resume) incompatible
JOB_FORMAT = 1


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


@lru_cache(maxsize=256)
def _spec_from_json(spec_json: str) -> Spec:
    return Spec.model_validate(json.loads(spec_json))


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "unreadable"
    return h.hexdigest()


@dataclass(frozen=True)
class RunJob:
    """One training run: small, picklable and hashable. `spec_json` is the run's own spec (this
    arm, this lr, this seed, only this analysis's section), canonical JSON."""

    analysis: str
    arm: str
    lr: float
    seed: int
    spec_json: str

    @property
    def spec(self) -> Spec:
        return _spec_from_json(self.spec_json)

    @property
    def label(self) -> str:
        return f"{self.arm} lr={self.lr:g} seed={self.seed}"

    @property
    def key(self) -> str:
        """A content key: equal for jobs that would produce the same record (threads and the
        spec's name don't count; an npz file counts by its bytes)."""
        doc = json.loads(self.spec_json)
        doc.pop("threads", None)
        path = doc.get("data", {}).get("path")
        material = {"format": JOB_FORMAT, "analysis": self.analysis, "spec": doc,
                    "data_digest": _file_digest(path) if path else None}
        return hashlib.sha256(_canonical(material).encode()).hexdigest()[:24]


def job_spec(spec: Spec, section: str | None, arm_name: str, lr: float, seed: int) -> str:
    """The canonical JSON of one run's spec: everything that can change its record, nothing else.

    Its analysis section, plus the companion sections claim C9 needs on the arms it compares (the
    other probe of measure-ics / lipschitz, only in specs with an ℓp arm: bncli.analyses.c9)."""
    from bncli.analyses.c9 import companion_sections

    d = spec.model_dump(mode="json")
    d["name"] = "run"
    d["seed"] = seed
    d["seeds"] = 1
    d["arms"] = [a for a in d["arms"] if a["name"] == arm_name]
    d["train"]["lr"] = [lr]
    d["verdict"] = VerdictSpec().model_dump(mode="json")
    sections = ([section] if section else []) + companion_sections(spec, section, arm_name)
    d["analysis"] = {s: d["analysis"][s] for s in sections}
    return _canonical(d)


def plan(spec: Spec, analysis: str) -> list[RunJob]:
    """Every seed x learning rate x arm of the spec for one analysis, in the order they report."""
    from bncli.analyses import get_analysis

    a = get_analysis(analysis)
    return [
        RunJob(a.name, arm.name, lr, seed, job_spec(spec, a.section, arm.name, lr, seed))
        for seed in spec.seed_list
        for lr in spec.train.lr
        for arm in spec.arms
    ]


_DATA_CACHE: dict[str, Any] = {}


def data_key(spec: Spec) -> str:
    """What identifies a run's data in memory: the data spec and the device."""
    from bncli.runtime import resolve_device

    return _canonical({"data": spec.data.model_dump(mode="json"), "device": str(resolve_device(spec.device))})


def job_data(spec: Spec) -> Any:
    """The run's data on its device, loaded once per process (specs that share data share it)."""
    from bncli.data import load_data
    from bncli.runtime import resolve_device

    key = data_key(spec)
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 8:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = load_data(spec.data, "cpu").to(resolve_device(spec.device))
    return _DATA_CACHE[key]


def seed_data(spec: Spec, data: Any) -> None:
    """Give this process a run's data that another process already loaded (a worker gets it from
    the parent once, instead of loading it again)."""
    from bncli.runtime import resolve_device

    _DATA_CACHE[data_key(spec)] = data.to(resolve_device(spec.device))


def run_job(
    job: RunJob,
    data: Any = None,
    probe_factory: Callable[..., Sequence[Any]] | None = None,
    on_progress: Callable[[int], None] | None = None,
):
    """Train one job with its analysis's probes (or `probe_factory`) and return its RunRecord."""
    from bncli.analyses import get_analysis
    from bncli.experiment import build_arm_model, initial_model, record_of
    from bncli.runtime import configure_threads, resolve_threads
    from bncli.train import train_run

    spec = job.spec
    data = data if data is not None else job_data(spec)
    # `auto` resolves here, from the job's model and batch size: the job key ignores threads
    configure_threads(resolve_threads(spec, data.input_shape, data.n_out, data.n_train))
    arm = spec.arms[0]
    init = initial_model(spec, data, job.seed)
    model = build_arm_model(spec, arm, init, data, job.seed)
    factory = probe_factory if probe_factory is not None else get_analysis(job.analysis).probe_factory
    probes = list(factory(spec, arm, job.lr, job.seed, data)) if factory is not None else []
    outcome = train_run(model, data, arm, spec.train, job.lr, job.seed, probes, on_progress)
    return record_of(spec, job, outcome, probes, data.task)
