"""Memory a spec will need, estimated before anything is allocated, against what is free.

The estimate is deliberately generous (float32 everywhere, every buffer alive at once): its job
is to turn `hidden: [60000, 60000]` or `n_samples: 10000000` into one clear line naming the
field, instead of a MemoryError, an OOM kill or a swapping machine minutes into a run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bncli.data.registry import source_info
from bncli.errors import SpecError

if TYPE_CHECKING:
    from bncli.spec import DataSpec, ModelSpec, Spec

F32 = 4  # bytes per float32
GIB = 1 << 30
EVAL_CHUNK = 4096  # train.evaluate's chunk: eval activations never exceed this many examples


def available_bytes(device: Any = None) -> int | None:
    """Free memory: the CUDA device's when one is given, else the machine's (None: unknown)."""
    if device is not None and str(device).startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _layers_field(spec: Spec) -> str:
    from bncli.models.registry import get_family

    return get_family(spec.model.kind).LAYERS_FIELD


def _widths(spec: Spec) -> list[int]:
    from bncli.models.registry import widths

    return widths(spec.model)


def _smaller_model(spec: Spec, field: str, layers: list[int], with_: Any) -> Spec:
    """The spec with an ordinary-sized model: widths 100 (mlp, cnn), first stage 16 (vgg, resnet)."""
    key = field.split(".")[-1]
    if key == "width":
        return with_("model", width=min(layers[0] if layers else 16, 16))
    if key in ("hidden", "channels"):
        return with_("model", **{key: [min(w, 100) for w in layers]})
    return spec  # a user's module: nothing to shrink here


def _data_field(spec: Spec) -> str:
    return source_info(spec.data.source).size_field


def _model_size(model: ModelSpec, input_shape: tuple[int, ...], n_out: int) -> tuple[int, int, int]:
    """(parameters incl. norm buffers, activations per example, positions per unit: 1, or H x W)."""
    from bncli.models.registry import get_family

    params, act, positions = get_family(model.kind).size(model, tuple(input_shape), n_out)
    return params, act, positions


def estimate_parts(
    spec: Spec,
    input_shape: tuple[int, ...],
    n_out: int,
    n_train: int,
    n_test: int,
    analyses: Iterable[str] | None = None,
) -> list[tuple[str, int, str]]:
    """(what, bytes, the spec field that drives it) for each part of the estimate.

    `analyses` names the sections of the analyses that will run (ics, lipschitz, ...); None takes
    the most demanding one of spec.analysis, since a command runs one at a time.
    """
    params, act, positions = _model_size(spec.model, input_shape, n_out)
    n_in = math.prod(input_shape)
    batch = max(1, min(spec.train.batch_size, n_train))
    label = max(n_out * F32, 8)  # regression targets, or int64 class labels
    layers = _layers_field(spec)
    data_field = _data_field(spec)
    # image sources keep uint8 pixels (normalized per batch); the others float32 features
    pixel = 1 if source_info(spec.data.source).reads_root else F32

    parts: list[tuple[str, int, str]] = [
        ("data", (n_train + n_test) * (n_in * pixel + label), data_field),
        # parameters, gradients, optimizer state (adam: two moments) and a spare copy, for
        # every arm plus the shared initial model
        ("models", params * F32 * (5 if spec.train.optimizer == "adam" else 4) * (len(spec.arms) + 1),
         layers),
        # forward activations and their gradients for one batch
        ("training batch", 2 * batch * act * F32, "train.batch_size"),
        ("evaluation", min(EVAL_CHUNK, max(n_test, min(spec.train.eval_train_examples, n_train)))
         * act * F32, layers),
    ]

    from bncli.analyses import ANALYSES
    from bncli.analyses.base import Sizes

    sizes = Sizes(params, act, positions, batch, n_train)
    probe: list[tuple[str, int, str]] = []
    for an in ANALYSES.values():  # each analysis declares its probes' memory (registry entry)
        if an.memory is None or not an.section or (analyses is not None and an.section not in analyses):
            continue
        probe += an.memory(getattr(spec.analysis, an.section), sizes)
    if probe:
        parts.append(max(probe, key=lambda p: p[1]))
    if spec.precision == "float64":  # every float twice as wide (generous for uint8 images, labels)
        parts = [(what, 2 * b, field) for what, b, field in parts]
    return parts


def estimate_bytes(
    spec: Spec,
    input_shape: tuple[int, ...],
    n_out: int,
    n_train: int,
    n_test: int,
    analyses: Iterable[str] | None = None,
) -> int:
    """A generous upper estimate of the memory one run of the spec needs, in bytes."""
    return sum(b for _, b, _ in estimate_parts(spec, input_shape, n_out, n_train, n_test, analyses))


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / (1 << 20):.0f} MiB"


def require(need: int, field: str, what: str, available: int | None, where: str = "this machine") -> None:
    """Raise SpecError naming `field` when `need` bytes exceed `available` (None: don't check)."""
    if available is not None and need > available:
        raise SpecError(
            f"{field}: {what} would need about {_gib(need)} of memory, {where} has "
            f"{_gib(available)} free; make {field} smaller"
        )


def likely_field(
    spec: Spec,
    input_shape: tuple[int, ...],
    n_out: int,
    n_train: int,
    n_test: int,
    analyses: Iterable[str] | None = None,
) -> str:
    """The spec field whose everyday value would shrink the estimate the most.

    Each candidate is put back to an ordinary size (widths 100, 2,000 examples, batch 60, probe
    batches 256, 8 eta' points) and the estimate recomputed; the biggest saving names the field.
    """
    def est(s: Spec, n_tr: int = n_train, n_te: int = n_test) -> int:
        return estimate_bytes(s, input_shape, n_out, n_tr, n_te, analyses)

    def with_(section: str, **update: Any) -> Spec:
        return spec.model_copy(update={section: getattr(spec, section).model_copy(update=update)})

    def with_analysis(name: str, **update: Any) -> Spec:
        sub = getattr(spec.analysis, name).model_copy(update=update)
        return spec.model_copy(update={"analysis": spec.analysis.model_copy(update={name: sub})})

    field = _layers_field(spec)
    layers = _widths(spec)
    scale = min(1.0, 2000 / max(1, n_train + n_test))
    a = spec.analysis
    candidates: list[tuple[str, int]] = [
        (field, est(_smaller_model(spec, field, layers, with_))),
        (_data_field(spec),
         est(spec, max(2, int(n_train * scale)), max(1, int(n_test * scale)))),
        ("train.batch_size", est(with_("train", batch_size=min(spec.train.batch_size, 60)))),
    ]
    from bncli.analyses import ANALYSES

    for an in ANALYSES.values():  # the fields each analysis says can shrink its probes
        for name, update in an.shrink:
            candidates.append((name, est(with_analysis(an.section, **update(getattr(a, an.section))))))
    field, smallest = min(candidates, key=lambda c: c[1])
    if smallest >= est(spec):  # nothing unusual: blame the largest part
        parts = estimate_parts(spec, input_shape, n_out, n_train, n_test, analyses)
        field = max(parts, key=lambda p: p[1])[2]
    return field


def check_budget(
    spec: Spec,
    input_shape: tuple[int, ...],
    n_out: int,
    n_train: int,
    n_test: int,
    available: int | None = None,
    device: Any = None,
    analyses: Iterable[str] | None = None,
) -> int:
    """Fail before training when the estimate exceeds free memory; return the estimate.

    `available` overrides the measured free memory (bytes); with a CUDA `device` the device's
    free memory is measured, else the machine's. `analyses` as in estimate_parts. The error
    names the likely field (model.hidden, data.n_samples, train.batch_size, a probe size, ...).
    """
    need = estimate_bytes(spec, input_shape, n_out, n_train, n_test, analyses)
    if available is None:
        available = available_bytes(device)
    if available is not None and need > available:
        field = likely_field(spec, input_shape, n_out, n_train, n_test, analyses)
        on_gpu = device is not None and str(device).startswith("cuda")
        require(need, field, "this spec", available, f"the GPU {device}" if on_gpu else "this machine")
    return need


def synthetic_bytes(data: DataSpec) -> int:
    """Peak memory of generating the synthetic data set (float64 draws, then float32 copies)."""
    n, d = data.n_samples, data.n_features
    if data.task == "regression":  # x, the teacher, y = x A + noise
        drawn = n * d + d * data.n_outputs + 3 * n * data.n_outputs
    else:  # centers, labels, centers[y] + noise
        drawn = data.n_classes * d + n + 3 * n * d
    return 8 * drawn + 3 * F32 * n * (d + (data.n_outputs if data.task == "regression" else 0))


def check_synthetic_size(data: DataSpec, available: int | None = None) -> None:
    """Refuse a synthetic data set that cannot fit, before drawing a single number."""
    if available is None:
        available = available_bytes()
    field = "data.n_features" if data.n_features > data.n_samples else "data.n_samples"
    require(synthetic_bytes(data), field, "the synthetic data", available)
