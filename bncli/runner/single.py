"""SingleRunner: every job is its own group, trained alone as one model (bncli's reference path)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bncli.plan import RunJob
from bncli.results import RunRecord
from bncli.runner.base import Progress


def run_job(
    job: RunJob,
    data: Any = None,
    probe_factory: Callable[..., Sequence[Any]] | None = None,
    on_progress: Progress | None = None,
) -> RunRecord:
    """Train one job with the probes it names (or `probe_factory`'s: tests, benchmarks) and
    return its RunRecord."""
    from bncli.probes.registry import make_probes
    from bncli.runner.build import build_arm_model, initial_model, record_of
    from bncli.runner.cache import job_data
    from bncli.runtime import configure_threads, precision, resolve_threads
    from bncli.train import train_run

    spec = job.spec
    data = data if data is not None else job_data(spec)
    # `auto` resolves here, from the job's model and batch size: the job key ignores threads
    configure_threads(resolve_threads(spec, data.input_shape, data.n_out, data.n_train))
    arm = spec.arms[0]
    with precision(spec.precision):
        init = initial_model(spec, data, job.seed)
        model = build_arm_model(spec, arm, init, data, job.seed)
        if probe_factory is not None:
            probes = list(probe_factory(spec, arm, job.lr, job.seed, data))
        else:
            probes = make_probes(job.probes, spec, arm, job.lr, job.seed, data)
        outcome = train_run(model, data, arm, spec.train, job.lr, job.seed, probes, on_progress)
        return record_of(spec, job, outcome, probes, data.task)


class SingleRunner:
    """Groups of one: each job trains alone. `probe_factory` replaces the jobs' named probes
    (tests inject failing probes; benchmarks their own)."""

    name = "single"

    def __init__(self, probe_factory: Callable[..., Sequence[Any]] | None = None) -> None:
        self.probe_factory = probe_factory

    def group_key(self, job: RunJob) -> str:
        return job.key

    def run(self, jobs: Sequence[RunJob], data: Any = None, progress: Progress | None = None) -> list[RunRecord]:
        return [run_job(j, data, self.probe_factory, progress) for j in jobs]
