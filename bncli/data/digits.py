"""scikit-learn's 8x8 digits (1,797 images, 10 classes), read from the file scikit-learn installs:
no download, and no `sklearn.datasets` import (it pulls in scipy.stats: seconds per process)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from bncli.data.base import RawData
from bncli.errors import DataError
from bncli.spec import DataSpec


def where(spec: DataSpec) -> str:
    return "data"


def describe(spec: DataSpec) -> str:
    return "digits"


def _csv_path() -> Path:
    found = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if found is None or not found.submodule_search_locations:
        raise DataError("data.source: digits needs scikit-learn installed (pip install scikit-learn)")
    return Path(next(iter(found.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def _read() -> tuple[np.ndarray, np.ndarray]:
    path = _csv_path()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
    except OSError:  # a scikit-learn that keeps the file elsewhere: its own loader
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    # the same arrays as sklearn.datasets.load_digits(): pixels, then the label column
    return table[:, :-1].astype(np.float64), table[:, -1].astype(np.int64)


def load(spec: DataSpec, rng: np.random.Generator) -> RawData:
    x, y = _read()
    return RawData(x, y, task="classification", image_shape=(1, 8, 8) if spec.shape == "image" else None)
