"""Dataset sources -> in-memory tensors on the run's device, and the seeded batch iterator."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from bncli.budget import check_synthetic_size
from bncli.errors import DataError
from bncli.runtime import make_generator
from bncli.spec import DataSpec


@dataclass(frozen=True)
class Dataset:
    """Train and held-out tensors, already standardized and on the device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str  # "classification" | "regression"
    n_out: int  # classes, or regression outputs

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def to(self, device: torch.device) -> Dataset:
        return Dataset(
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.task,
            self.n_out,
        )

    def probe_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed batch for probes: the first `size` training examples (the split is shuffled)."""
        n = min(size, self.n_train)
        return self.x_train[:n], self.y_train[:n]


def _synthetic(spec: DataSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
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


def _digits(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, str]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64), "classification"


def _npz(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    path = spec.path
    assert path is not None
    try:
        if not path.exists():
            raise DataError(f"{path}: data.path: no such file")
        if path.is_dir():
            raise DataError(f"{path}: data.path: is a directory, not an .npz file")
        # np.load guesses .npy or pickle for anything else and answers with allow_pickle advice
        if not zipfile.is_zipfile(path):
            raise DataError(
                f"{path}: data.path: not an .npz file (expected the zip archive numpy.savez writes)"
            )
    except (OSError, ValueError) as exc:  # permissions, a NUL byte in the name, ...
        raise DataError(f"{path}: data.path: cannot read: {exc}") from None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {}
            for k in f.files:
                try:
                    arrays[k] = f[k]
                except ValueError as exc:
                    if "pickle" not in str(exc):
                        raise
                    raise DataError(
                        f"{path}: data.path: array {k!r} holds Python objects; save numeric arrays"
                    ) from None
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: data.path: the arrays do not fit in memory") from None
    except Exception as exc:  # numpy and zipfile raise several types for a damaged file
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path}: data.path: not a readable .npz file ({first})") from None
    for key in ("X", "y"):
        if key not in arrays:
            raise DataError(f"{path}: data.path: array {key!r} missing (found: {sorted(arrays)})")
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: data.path: give both X_test and y_test, or neither")
    return arrays["X"], arrays["y"], arrays.get("X_test"), arrays.get("y_test")


def _check_pair(x: np.ndarray, y: np.ndarray, name: str, where: str) -> None:
    for arr, label in ((x, "X"), (y, "y")):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise DataError(f"{where}: {name}: {label} must be numeric, not {arr.dtype}")
        if np.iscomplexobj(arr):  # a float32 cast would silently drop the imaginary part
            raise DataError(f"{where}: {name}: {label} is complex ({arr.dtype}); give real numbers")
    if x.ndim < 2:
        raise DataError(f"{where}: {name}: X must be 2-D (N, features) or 4-D (N, C, H, W)")
    if y.shape[0] != x.shape[0]:
        raise DataError(
            f"{where}: {name}: X has {x.shape[0]} examples but y has {y.shape[0]}"
        )
    if x.shape[0] == 0:
        raise DataError(f"{where}: {name}: no examples")
    # X (and regression y) are checked again after the float32 cast: 1e39 is finite only here
    if not np.isfinite(x).all():
        raise DataError(f"{where}: {name}: X contains NaN or infinite values")
    if not np.isfinite(y.astype(np.float64)).all():
        raise DataError(f"{where}: {name}: y contains NaN or infinite values")


def _check_float32(arr: np.ndarray, label: str, where: str, hint: str) -> None:
    """Fail when float32 (what the model trains in) overflows values that were finite before."""
    if not np.isfinite(arr).all():
        raise DataError(
            f"{where}: {label} is not finite in float32 (|values| above 3.4e38, or NaN){hint}"
        )


def _infer_task(y: np.ndarray) -> str:
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return "classification"
    if y.ndim == 1 and np.all(np.equal(np.mod(y, 1), 0)) and y.min() >= 0:
        return "classification"
    return "regression"


def load_data(spec: DataSpec, device: torch.device | str = "cpu") -> Dataset:
    """Build the dataset the spec names: deterministic split (data.seed) and standardization."""
    rng = np.random.default_rng(spec.seed)
    x_test = y_test = None
    where = str(spec.path) if spec.source == "npz" else "data"
    if spec.source == "synthetic":
        check_synthetic_size(spec)  # before allocating: n_samples: 1e7 x n_features: 1e6 is 80 TB
        try:
            x, y, task = _synthetic(spec, rng)
        except MemoryError:
            raise DataError("data.n_samples: the synthetic data does not fit in memory") from None
    elif spec.source == "digits":
        x, y, task = _digits(spec)
    else:
        x, y, x_test, y_test = _npz(spec)
        _check_pair(x, y, "X/y", where)
        # an explicit data.task wins; auto: integer labels mean classes
        task = spec.task if spec.task != "auto" else _infer_task(y)
        if x_test is not None:
            _check_pair(x_test, y_test, "X_test/y_test", where)
            if x_test.shape[1:] != x.shape[1:]:
                raise DataError(
                    f"{where}: X_test has shape {x_test.shape[1:]} per example, X has {x.shape[1:]}"
                )

    if x_test is None:
        perm = rng.permutation(len(x))
        n_test = max(1, int(round(spec.test_fraction * len(x))))
        if len(x) - n_test < 2:
            raise DataError(f"{where}: too few examples ({len(x)}) to split off a held-out set")
        x, y, x_test, y_test = x[perm[n_test:]], y[perm[n_test:]], x[perm[:n_test]], y[perm[:n_test]]

    hint = " (data.class_sep or data.noise too large?)" if spec.source == "synthetic" else ""
    with np.errstate(over="ignore"):  # an overflow is reported just below, as a DataError
        x = x.astype(np.float32)
        x_test = x_test.astype(np.float32)
    _check_float32(x, "X", where, hint)
    _check_float32(x_test, "X_test" if spec.source == "npz" else "X", where, hint)
    if spec.standardize:
        # per-feature statistics of the training split only
        mean = x.mean(axis=0, keepdims=True)
        std = x.std(axis=0, keepdims=True)
        std = np.where(std > 1e-8, std, 1.0)
        x = (x - mean) / std
        x_test = (x_test - mean) / std
        if not (np.isfinite(x).all() and np.isfinite(x_test).all()):
            raise DataError(
                f"{where}: X is too large to standardize in float32 (|values| near 1e19 or above); "
                "rescale it, or set data.standardize: false"
            )

    if spec.source == "digits" and spec.shape == "image":
        x = x.reshape(-1, 1, 8, 8)
        x_test = x_test.reshape(-1, 1, 8, 8)

    if task == "classification":
        y_all = np.concatenate([np.asarray(y).ravel(), np.asarray(y_test).ravel()])
        if np.asarray(y).ndim != 1 or np.any(np.mod(y_all, 1) != 0):
            raise DataError(f"{where}: data.task: classification needs 1-D integer class labels in y")
        if y_all.min() < 0:
            raise DataError(f"{where}: class labels must be 0..C-1 (found {int(y_all.min())})")
        n_out = int(y_all.max()) + 1
        if n_out < 2:
            raise DataError(f"{where}: classification needs at least 2 classes")
        yt = torch.as_tensor(np.asarray(y).astype(np.int64))
        yte = torch.as_tensor(np.asarray(y_test).astype(np.int64))
    else:
        with np.errstate(over="ignore"):
            y2 = np.asarray(y, dtype=np.float32)
            y2t = np.asarray(y_test, dtype=np.float32)
        y2 = y2[:, None] if y2.ndim == 1 else y2
        y2t = y2t[:, None] if y2t.ndim == 1 else y2t
        _check_float32(y2, "y", where, hint)
        _check_float32(y2t, "y_test" if spec.source == "npz" else "y", where, hint)
        n_out = int(y2.shape[1])
        if y2t.shape[1:] != y2.shape[1:]:
            raise DataError(
                f"{where}: y_test has {y2t.shape[1]} outputs per example but y has {n_out}"
            )
        yt, yte = torch.as_tensor(y2), torch.as_tensor(y2t)

    ds = Dataset(torch.as_tensor(x), yt, torch.as_tensor(x_test), yte, task, n_out)
    return ds.to(torch.device(device))


def batch_indices(
    n: int, batch_size: int, seed: int, device: torch.device | str = "cpu"
) -> Iterator[torch.Tensor]:
    """Endless index batches from a seeded permutation per epoch (drop-last: BN sees equal m).

    The same (n, batch_size, seed) gives the same sequence on every run and for every arm.
    """
    gen = make_generator(seed)
    bs = min(batch_size, n)
    per_epoch = n // bs
    while True:
        perm = torch.randperm(n, generator=gen).to(device)
        for i in range(per_epoch):
            yield perm[i * bs : (i + 1) * bs]
