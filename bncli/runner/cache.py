"""The in-process data cache: each distinct data set is loaded once per process (and once per
executor: workers and Ray tasks get the parent's copy). One data key for every executor."""

from __future__ import annotations

from typing import Any

from bncli.plan import canonical
from bncli.spec import Spec

_DATA_CACHE: dict[str, Any] = {}
_MAX_ENTRIES = 8


def data_key(spec: Spec, device: Any = None) -> str:
    """What identifies a run's data in memory: the data spec and the device (`device`: override
    the spec's, e.g. "cpu" for the copy an executor ships)."""
    from bncli.runtime import resolve_device

    dev = str(device) if device is not None else str(resolve_device(spec.device))
    return canonical({"data": spec.data.model_dump(mode="json"), "device": dev, "precision": spec.precision})


def in_precision(data: Any, precision: str) -> Any:
    """`data` with its floating tensors (features, regression targets, an image transform's
    mean and std) in the spec's precision; uint8 images and class labels stay as they are."""
    import dataclasses

    from bncli.runtime import DTYPES

    dtype = DTYPES[precision]
    if data.x_train.dtype == dtype or precision == "float32":
        return data

    def cast(t: Any) -> Any:
        return t.to(dtype) if t.is_floating_point() else t

    tf = data.transform
    if tf is not None:
        tf = dataclasses.replace(tf, mean=cast(tf.mean), std=cast(tf.std))
    return dataclasses.replace(data, x_train=cast(data.x_train), y_train=cast(data.y_train),
                               x_test=cast(data.x_test), y_test=cast(data.y_test), transform=tf)


def _remember(key: str, data: Any) -> None:
    if key not in _DATA_CACHE and len(_DATA_CACHE) >= _MAX_ENTRIES:
        _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
    _DATA_CACHE[key] = data


def cpu_data(spec: Spec) -> Any:
    """The run's data on the CPU, loaded once per process (what executors ship to workers)."""
    from bncli.data import load_data

    key = data_key(spec, "cpu")
    if key not in _DATA_CACHE:
        _remember(key, in_precision(load_data(spec.data, "cpu"), spec.precision))
    return _DATA_CACHE[key]


def job_data(spec: Spec) -> Any:
    """The run's data on its device, loaded once per process (specs that share data share it)."""
    from bncli.runtime import resolve_device

    key = data_key(spec)
    if key not in _DATA_CACHE:
        _remember(key, cpu_data(spec).to(resolve_device(spec.device)))
    return _DATA_CACHE[key]


def seed_data(spec: Spec, data: Any) -> None:
    """Give this process a run's data that another process already loaded (a worker gets it from
    the parent once, instead of loading it again)."""
    from bncli.runtime import resolve_device

    device = resolve_device(spec.device)
    _remember(data_key(spec, "cpu"), data.to("cpu"))
    _remember(data_key(spec), data.to(device))
