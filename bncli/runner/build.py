"""Building a run: the shared initial weights of a seed, an arm's copy of them, the checks before
training (device, data, model fits, memory), and a finished run's record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bncli.data import Dataset
from bncli.errors import DataError, SpecError
from bncli.models import Net, build_model, copy_shared_state
from bncli.results import RunRecord
from bncli.runtime import configure_threads, precision, resolve_device, resolve_threads, seed_everything
from bncli.schedule import scheduled
from bncli.spec import ArmSpec, Spec
from bncli.train import TrainOutcome


def _reference_arm() -> ArmSpec:
    return ArmSpec(name="_init", norm="none")


def _build(spec: Spec, arm: ArmSpec, data: Dataset) -> Net:
    """build_model in the spec's precision. Its initial draws are in that precision too: torch's
    random fills round differently on each CPU instruction set (float32 draws by up to an ulp of
    float32), so float64 draws keep a float64 run portable; they are other numbers than float32's
    (the same distribution)."""
    with precision(spec.precision):
        return build_model(spec.model, arm, data.input_shape, data.n_out)


def initial_model(spec: Spec, data: Dataset, seed: int) -> Net:
    """The shared initial values for one seed: every arm copies these (not just the seed)."""
    seed_everything(seed)
    return _build(spec, _reference_arm(), data)


def build_arm_model(spec: Spec, arm: ArmSpec, init: Net, data: Dataset, seed: int) -> Net:
    """Build an arm's network and copy every shared parameter from `init`."""
    seed_everything(seed)
    model = _build(spec, arm, data)
    copy_shared_state(init, model)
    return model.to(data.x_train.device)


_FITS: set[tuple[Any, ...]] = set()  # (model, arm, input shape, outputs) already built and run once


def check_compatible(spec: Spec, data: Dataset) -> None:
    """Fail before training when the model cannot take this data (shapes, tasks, layer names).
    A model that fitted inputs of this shape once is not built again (a 10,000-cell batch whose
    cells differ in lr or seed builds it once)."""
    fit = (spec.model.model_dump_json(), spec.arms[0].model_dump_json(), tuple(data.input_shape), data.n_out,
           spec.precision)
    if fit not in _FITS:
        try:
            model = _build(spec, spec.arms[0], data)
            with precision(spec.precision), torch.no_grad():
                model.eval()
                model(data.probe_batch(2)[0].cpu())
        except DataError:
            raise
        except RuntimeError as exc:
            raise DataError(
                f"model: does not fit data of shape {data.input_shape}: {str(exc).splitlines()[0]}"
            ) from None
        if spec.model.kind != "module":  # a user's factory may depend on more than its spec
            _FITS.add(fit)
    if data.n_train < 2:
        raise DataError("data: need at least 2 training examples")
    if min(spec.train.batch_size, data.n_train) < 2 and any(a.norm_info.per_batch for a in spec.arms):
        raise SpecError("train.batch_size: BN needs at least 2 examples per batch")


def prepare(spec: Spec, analyses: Sequence[str] | None = None) -> tuple[Dataset, torch.device]:
    """Resolve the device, load the data, check the run fits in memory (before any model is built:
    bncli.budget's estimate for `analyses`, None: the most demanding) and that the model fits the
    data: everything that can fail before training."""
    from bncli.budget import check_budget
    from bncli.runner.cache import job_data

    device = resolve_device(spec.device)
    data = job_data(spec)
    configure_threads(resolve_threads(spec, data.input_shape, data.n_out, data.n_train))
    check_budget(spec, data.input_shape, data.n_out, data.n_train, int(data.x_test.shape[0]),
                 device=device, analyses=analyses)
    check_compatible(spec, data)
    return data, device


def data_info(data: Dataset, device: torch.device):
    """The plain facts about the data that summaries and headers use."""
    from bncli.analyses.base import DataInfo

    return DataInfo(data.task, data.n_train, int(data.x_test.shape[0]), data.input_shape, data.n_out,
                    str(device))


def steps_to_target(spec: Spec, outcome: TrainOutcome, task: str) -> int | None:
    h = outcome.history
    if task == "classification" and spec.train.target_accuracy is not None:
        for s, acc in zip(h.step, h.test_acc):
            if acc is not None and acc >= spec.train.target_accuracy:
                return s
    if task == "regression" and spec.train.target_loss is not None:
        for s, loss in zip(h.step, h.test_loss):
            if loss <= spec.train.target_loss:
                return s
    return None


def record_of(spec: Spec, job: Any, outcome: TrainOutcome, probes: Sequence[Any], task: str,
              numerics: str = "single") -> RunRecord:
    """A finished run as plain data: curves, outcome and each probe's result."""
    h = outcome.history
    return RunRecord(
        arm=job.arm,
        lr=job.lr,
        seed=job.seed,
        steps=h.step,
        train_loss=h.train_loss,
        train_eval_loss=h.train_eval_loss,
        train_acc=h.train_acc,
        test_loss=h.test_loss,
        test_acc=h.test_acc,
        diverged_at=outcome.diverged_at,
        divergence_reason=outcome.divergence_reason,
        steps_done=outcome.steps_done,
        steps_to_target=steps_to_target(spec, outcome, task),
        wall_s=outcome.wall_s,
        interrupted=outcome.interrupted,
        probes={p.name: p.result() for p in probes},
        lr_curve=list(h.lr) if scheduled(spec.train) else [],
        numerics=numerics,
        precision=spec.precision,
    )
