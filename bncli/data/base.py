"""The in-memory Dataset every source becomes: shared checks, split, standardization, and the
seeded batch iterator. Image sources (mnist, cifar) keep uint8 images and prepare each batch
when drawn (bncli.data.transform)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from bncli.data.transform import ImageTransform, channel_stats
from bncli.errors import DataError
from bncli.runtime import make_generator
from bncli.spec import DataSpec


@dataclass(frozen=True)
class Dataset:
    """Train and held-out tensors on the device: already standardized float32, or (with a
    `transform`) uint8 images that batch() / prepare() normalize (and augment) per batch."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str  # "classification" | "regression"
    n_out: int  # classes, or regression outputs
    transform: ImageTransform | None = None

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
            None if self.transform is None else self.transform.to(device),
        )

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Stored examples -> model inputs (uint8 images are normalized; floats pass as they are)."""
        return x if self.transform is None else self.transform.normalize(x)

    def batch(self, idx: torch.Tensor, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training batch `idx` of step `step` as model inputs: augmented (data.augment) from
        (seed, step) only, so every arm of a seed sees the same images."""
        x = self.x_train[idx]
        if self.transform is not None:
            x = self.transform.train_batch(x, seed, step)
        return x, self.y_train[idx]

    def probe_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed batch for probes: the first `size` training examples (the split is shuffled)."""
        n = min(size, self.n_train)
        return self.prepare(self.x_train[:n]), self.y_train[:n]


MAX_CLASSES = 100_000  # class labels are 0..C-1: a label of 1e9 would ask for 1e9 outputs


def _check_pair(x: np.ndarray, y: np.ndarray, name: str, where: str) -> None:
    for arr, label in ((x, "X"), (y, "y")):
        if np.iscomplexobj(arr):  # a float32 cast would silently drop the imaginary part
            raise DataError(f"{where}: {name}: {label} is complex ({arr.dtype}); give real numbers")
        # numbers only: bool, integers, floats (timedelta64 and datetime64 count as integers to numpy)
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{where}: {name}: {label} must be numeric, not {arr.dtype}")
    if x.ndim not in (2, 3, 4):  # one example per row: features, or an image (H, W) or (C, H, W)
        raise DataError(f"{where}: {name}: X must be 2-D (N, features), 3-D (N, H, W) or 4-D (N, C, H, W); "
                        f"it is {x.ndim}-D (shape {x.shape})")
    if 0 in x.shape[1:]:
        raise DataError(f"{where}: {name}: X has no features (shape {x.shape})")
    if y.ndim < 1:
        raise DataError(f"{where}: {name}: y is a single value; give one label or target per example")
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


@dataclass
class RawData:
    """What a data source returns: arrays as read (any numeric dtype), before the shared checks,
    split, standardization and float32 cast. x_test/y_test None: split off test_fraction."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    task: str | None = None  # None: the spec's data.task, or inferred from y when auto
    image_shape: tuple[int, ...] | None = None  # reshape each example to this after standardizing
    # uint8 (N, C, H, W) images with int labels, kept as bytes and normalized per batch
    uint8_images: bool = False
    augment: bool = False  # random crop + flip of training batches (uint8_images only)
    n_classes: int | None = None  # uint8_images: the label count (a subset may miss a class)


def load_data(spec: DataSpec, device: torch.device | str = "cpu") -> Dataset:
    """Build the dataset the spec names: its source's arrays, then a deterministic split
    (data.seed), standardization and the checks every source shares."""
    from bncli.data.registry import get_source

    source = get_source(spec.source)
    rng = np.random.default_rng(spec.seed)
    where = source.where(spec)
    raw = source.load(spec, rng)
    if raw.uint8_images:
        return _image_dataset(spec, raw, rng, where).to(torch.device(device))
    x, y, x_test, y_test = raw.x, raw.y, raw.x_test, raw.y_test
    if raw.task is None:
        _check_pair(x, y, "X/y", where)
    task = raw.task or (spec.task if spec.task != "auto" else _infer_task(y))
    if x_test is not None:
        if raw.task is None:
            _check_pair(x_test, y_test, "X_test/y_test", where)
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{where}: X_test has shape {x_test.shape[1:]} per example, X has {x.shape[1:]}"
            )

    test_x_label, test_y_label = getattr(source, "TEST_LABELS", ("X", "y"))
    if x_test is None:
        perm = rng.permutation(len(x))
        n_test = max(1, int(round(spec.test_fraction * len(x))))
        if len(x) - n_test < 2:
            raise DataError(f"{where}: too few examples ({len(x)}) to split off a held-out set")
        x, y, x_test, y_test = x[perm[n_test:]], y[perm[n_test:]], x[perm[:n_test]], y[perm[:n_test]]
    x, y = _subset(x, y, spec.subset, rng)
    x_test, y_test = _subset(x_test, y_test, spec.test_subset, rng)

    hint = getattr(source, "OVERFLOW_HINT", "")
    with np.errstate(over="ignore"):  # an overflow is reported just below, as a DataError
        x = x.astype(np.float32)
        x_test = x_test.astype(np.float32)
    _check_float32(x, "X", where, hint)
    _check_float32(x_test, test_x_label, where, hint)
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

    if raw.image_shape is not None:
        x = x.reshape(-1, *raw.image_shape)
        x_test = x_test.reshape(-1, *raw.image_shape)

    if task == "classification":
        y_all = np.concatenate([np.asarray(y).ravel(), np.asarray(y_test).ravel()])
        if np.asarray(y).ndim != 1 or np.any(np.mod(y_all, 1) != 0):
            raise DataError(f"{where}: data.task: classification needs 1-D integer class labels in y")
        if y_all.min() < 0:
            raise DataError(f"{where}: class labels must be 0..C-1 (found {int(y_all.min())})")
        if y_all.max() >= MAX_CLASSES:
            raise DataError(f"{where}: class labels must be 0..C-1 with C at most {MAX_CLASSES:,} "
                            f"(found a label {y_all.max():.6g}); is y a regression target? set data.task: regression")
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
        _check_float32(y2t, test_y_label, where, hint)
        n_out = int(y2.shape[1])
        if y2t.shape[1:] != y2.shape[1:]:
            raise DataError(
                f"{where}: y_test has {y2t.shape[1]} outputs per example but y has {n_out}"
            )
        yt, yte = torch.as_tensor(y2), torch.as_tensor(y2t)

    ds = Dataset(torch.as_tensor(x), yt, torch.as_tensor(x_test), yte, task, n_out)
    return ds.to(torch.device(device))


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, rng: np.random.Generator):
    """A fixed subset of n examples (data.seed's draw, sorted: the order stays the file's)."""
    if n is None or n >= len(x):
        return x, y
    keep = np.sort(rng.choice(len(x), size=n, replace=False))
    return x[keep], y[keep]


def _image_dataset(spec: DataSpec, raw: RawData, rng: np.random.Generator, where: str) -> Dataset:
    """uint8 images stay uint8; the training split's per-channel mean/std normalize each batch."""
    assert raw.x_test is not None and raw.y_test is not None
    x, y = _subset(raw.x, raw.y, spec.subset, rng)
    x_test, y_test = _subset(raw.x_test, raw.y_test, spec.test_subset, rng)
    if len(raw.x) < 2 or len(x) < 2:
        what = "data.subset" if len(raw.x) >= 2 else "the training files"
        raise DataError(f"{where}: {what}: need at least 2 training examples (found {len(x)})")
    if len(x_test) == 0:  # accuracy over no held-out images would divide by zero after training
        what = "data.test_subset" if len(raw.x_test) else "the test files"
        raise DataError(f"{where}: {what}: no held-out (test) examples; at least 1 is needed")
    if spec.standardize:
        mean, std = channel_stats(x)
    else:  # scaled to [0, 1] only
        mean, std = np.zeros(x.shape[1]), np.full(x.shape[1], 255.0)
    shape = (1, x.shape[1], 1, 1)
    tf = ImageTransform(torch.as_tensor(mean, dtype=torch.float32).reshape(shape),
                        torch.as_tensor(std, dtype=torch.float32).reshape(shape), raw.augment)
    n_out = raw.n_classes or int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    # IDX arrays are read-only views of the file's bytes: one writable copy each
    return Dataset(torch.as_tensor(np.require(x, requirements=["C", "W"])),
                   torch.as_tensor(y.astype(np.int64)),
                   torch.as_tensor(np.require(x_test, requirements=["C", "W"])),
                   torch.as_tensor(y_test.astype(np.int64)), "classification", n_out, tf)


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


def group_batch_indices(
    n: int, batch_size: int, seeds: list[int], device: torch.device | str = "cpu"
) -> Iterator[torch.Tensor]:
    """batch_indices of every seed at once: [K, batch] per step, row k the batch that
    batch_indices(n, batch_size, seeds[k]) gives at that step (epochs of equal n end together, so
    each epoch's K permutations are drawn once and every step is a view of them)."""
    gens = [make_generator(s) for s in seeds]
    bs = min(batch_size, n)
    per_epoch = n // bs
    while True:
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        for i in range(per_epoch):
            yield perms[:, i * bs : (i + 1) * bs]
