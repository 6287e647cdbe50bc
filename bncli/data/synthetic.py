"""Synthetic data: a Gaussian mixture (classification) or a linear teacher y = A x (regression)."""

from __future__ import annotations

import numpy as np

from bncli.data.base import RawData
from bncli.errors import DataError
from bncli.spec import DataSpec

OVERFLOW_HINT = " (data.class_sep or data.noise too large?)"


def where(spec: DataSpec) -> str:
    return "data"


def describe(spec: DataSpec) -> str:
    return "synthetic"


def load(spec: DataSpec, rng: np.random.Generator) -> RawData:
    from bncli.budget import check_synthetic_size

    check_synthetic_size(spec)  # before allocating: n_samples: 1e7 x n_features: 1e6 is 80 TB
    try:
        x, y, task = _generate(spec, rng)
    except MemoryError:
        raise DataError("data.n_samples: the synthetic data does not fit in memory") from None
    return RawData(x, y, task=task)


def _generate(spec: DataSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    n, d = spec.n_samples, spec.n_features
    if spec.task == "classification":
        centers = rng.normal(size=(spec.n_classes, d))
        centers *= spec.class_sep / np.sqrt(d) * np.sqrt(2.0)
        y = rng.integers(0, spec.n_classes, size=n)
        x = centers[y] + rng.normal(size=(n, d))
        return x, y, "classification"
    teacher = rng.normal(size=(d, spec.n_outputs)) / np.sqrt(d)
    x = rng.normal(size=(n, d))
    y = x @ teacher + spec.noise * rng.normal(size=(n, spec.n_outputs))
    return x, y, "regression"
