"""CIFAR-10 and CIFAR-100 from the published files in a local folder (bncli never downloads):
the python version (ROOT/cifar-10-batches-py/, ROOT/cifar-100-python/: pickles, read by a
restricted unpickler that runs no code) or the binary version (ROOT/cifar-10-batches-bin/,
ROOT/cifar-100-binary/), or those files directly in ROOT. Kept as uint8 (3, 32, 32) images;
CIFAR-100 uses the 100 fine labels."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from bncli.data.base import RawData
from bncli.data.mnist import data_root
from bncli.data.safe_pickle import safe_load
from bncli.errors import DataError
from bncli.spec import DataSpec

PIXELS = 3 * 32 * 32
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
# source -> (python folder, train files, test file), (binary folder, train files, test file)
LAYOUT = {
    "cifar10": (("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch"),
                ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin")),
    "cifar100": (("cifar-100-python", ["train"], "test"),
                 ("cifar-100-binary", ["train.bin"], "test.bin")),
}
ARCHIVE = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
N_CLASSES = {"cifar10": 10, "cifar100": 100}


def where(spec: DataSpec) -> str:
    return f"data.root {data_root(spec)}"


def describe(spec: DataSpec) -> str:
    return spec.source


def locate(spec: DataSpec) -> tuple[str, list[Path], Path]:
    """('python' | 'binary', train files, test file): the first complete set found, python first."""
    root = data_root(spec)
    for fmt, (sub, train, test) in zip(("python", "binary"), LAYOUT[spec.source], strict=True):
        for folder in (root / sub, root):
            files = [folder / n for n in train]
            if all(f.is_file() for f in files) and (folder / test).is_file():
                return fmt, files, folder / test
    (py_sub, py_train, py_test), (bin_sub, _b, _t) = LAYOUT[spec.source]
    raise DataError(
        f"data.root: {spec.source} files not found in {root}: expected {root / py_sub}/ with "
        f"{', '.join(py_train)}, {py_test} (the python version) or {root / bin_sub}/ (the binary "
        f"version); download {ARCHIVE[spec.source]} from {URL} and unpack it in {root} "
        f"(tar xzf {ARCHIVE[spec.source]} -C {root}), or set data.root (or $BNCLI_DATA)"
    )


def key_material(spec: DataSpec) -> object:
    """The files' names, sizes and modification times (cheap; a replaced file is new data)."""
    try:
        _fmt, train, test = locate(spec)
    except DataError:
        return "missing"
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in [*train, test])


def _read_python(path: Path, source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    try:
        doc = safe_load(blob)
    except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path}: not a CIFAR python batch file ({first}); nothing in it was run") from None
    label_key = b"labels" if source == "cifar10" else b"fine_labels"
    if not isinstance(doc, dict) or b"data" not in doc or label_key not in doc:
        raise DataError(f"{path}: not a CIFAR python batch file (no {label_key!r} and b'data')")
    x, y = doc[b"data"], np.asarray(doc[label_key])
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != PIXELS:
        raise DataError(f"{path}: b'data' must be uint8 of shape (N, {PIXELS})")
    if y.shape != (len(x),):
        raise DataError(f"{path}: {len(x)} images but labels of shape {y.shape}")
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        kind = {"U": "strings", "S": "bytes", "f": "floats", "b": "booleans"}.get(y.dtype.kind, str(y.dtype))
        raise DataError(f"{path}: {label_key.decode()} must be integer class numbers, not {kind} "
                        f"(the first is {y.flat[0]!r})")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def _read_binary(path: Path, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Records of label byte(s) + 3072 pixel bytes (CIFAR-100: coarse then fine label)."""
    labels = 1 if source == "cifar10" else 2
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    rec = labels + PIXELS
    if raw.size == 0 or raw.size % rec:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of {rec}-byte CIFAR records")
    table = raw.reshape(-1, rec)
    return table[:, labels:].reshape(-1, 3, 32, 32), table[:, labels - 1].astype(np.int64)


def load(spec: DataSpec, rng: np.random.Generator) -> RawData:
    fmt, train, test = locate(spec)
    read = _read_python if fmt == "python" else _read_binary
    parts = [read(p, spec.source) for p in train]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    x_test, y_test = read(test, spec.source)
    n = N_CLASSES[spec.source]
    for labels, path in ((y, train[0].parent), (y_test, test)):
        if labels.size and (labels.min() < 0 or labels.max() >= n):
            raise DataError(f"{path}: labels must be 0..{n - 1} (found {int(labels.max())})")
    return RawData(x, y, x_test, y_test, task="classification", uint8_images=True,
                   augment=spec.augment, n_classes=n)
