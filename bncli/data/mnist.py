"""IDX image data sets (MNIST, Fashion-MNIST, any other registered with
bncli.data.registry.idx_source) from their files in a local folder (bncli never downloads):
`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte` (or the names the entry gives), gzipped or not, in torchvision's layout
(ROOT/MNIST/raw/, ROOT/FashionMNIST/raw/) or directly in ROOT. Kept as uint8 (1, H, W) images.
What differs between data sets is data on their registry entries (folder, files, classes)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from bncli.data.base import RawData
from bncli.data.registry import MNIST_FILES, source_info
from bncli.errors import DataError
from bncli.spec import DataSpec

FILES = MNIST_FILES  # the default names (an entry may give others)


def _params(spec: DataSpec) -> dict:
    """The source's entry's IDX facts: subdir, where_to_get, files, n_classes, label_offset."""
    return source_info(spec.source).params
_DTYPES = {0x08: np.uint8}  # IDX type codes bncli reads (MNIST files are all unsigned bytes)


def data_root(spec: DataSpec) -> Path:
    """data.root, else $BNCLI_DATA, else ./data."""
    return spec.root if spec.root is not None else Path(os.environ.get("BNCLI_DATA") or "data")


def where(spec: DataSpec) -> str:
    return f"data.root {data_root(spec)}"


def describe(spec: DataSpec) -> str:
    return spec.source


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(spec: DataSpec) -> dict[str, Path]:
    """The four files, from ROOT/<MNIST|FashionMNIST>/raw/ or ROOT; a DataError that says what to
    put where when they are not there."""
    root = data_root(spec)
    params = _params(spec)
    files = params.get("files", FILES)
    candidates = [root / params["subdir"] / "raw", root]
    for folder in candidates:
        found = {k: _find(folder, stem) for k, stem in files.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    raise DataError(
        f"data.root: {spec.source} files not found in {candidates[0]} or {root}: expected "
        f"{', '.join(files.values())} (each may end in .gz); download them from "
        f"{params['where_to_get']} into {candidates[0]}, or set data.root (or $BNCLI_DATA)"
    )


def key_material(spec: DataSpec) -> object:
    """The files' names, sizes and modification times (cheap; a replaced file is new data)."""
    try:
        return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in locate(spec).values())
    except DataError:
        return "missing"


MAX_IDX_BYTES = 4 << 30  # MNIST's largest file holds 47 MB; a header declaring more is not a data set


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX array (big-endian header: 0, 0, type, ndim, then ndim uint32 sizes, then data).

    The header is read first and its sizes multiplied as Python integers (no int64 overflow to 0);
    then exactly the bytes it declares are read (one more, to see whether more follow): a small
    .gz that inflates to gigabytes is never decompressed whole."""
    import math
    import zlib

    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise DataError(f"{path}: not an IDX file (bad magic number)")
            code, dims = head[2], head[3]
            if code not in _DTYPES or dims != ndim:
                raise DataError(f"{path}: expected an IDX file of unsigned bytes with {ndim} dimensions "
                                f"(type 0x{code:02x}, {dims} dimensions)")
            sizes = f.read(4 * dims)
            if len(sizes) < 4 * dims:
                raise DataError(f"{path}: truncated IDX header")
            shape = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(dims))
            count = math.prod(shape)
            if count > MAX_IDX_BYTES:
                raise DataError(f"{path}: IDX header says {shape} ({count:,} bytes), more than the "
                                f"{MAX_IDX_BYTES >> 30} GiB an image file of this kind can hold")
            raw = f.read(count + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    except MemoryError:
        raise DataError(f"{path}: the {count:,} bytes its IDX header declares do not fit in memory") from None
    if len(raw) != count:
        follow = "more" if len(raw) > count else f"{len(raw):,}"
        raise DataError(f"{path}: IDX header says {shape} ({count:,} bytes) but {follow} follow")
    return np.frombuffer(raw, np.uint8, count=count).reshape(shape)


def load(spec: DataSpec, rng: np.random.Generator) -> RawData:
    files = locate(spec)
    params = _params(spec)
    n, first = params.get("n_classes", 10), params.get("label_offset", 0)
    x, y = read_idx(files["x"], 3), read_idx(files["y"], 1)
    x_test, y_test = read_idx(files["x_test"], 3), read_idx(files["y_test"], 1)
    for imgs, labels, what in ((x, y, "train"), (x_test, y_test, "t10k")):
        if len(imgs) != len(labels):
            raise DataError(f"{where(spec)}: {what} images ({len(imgs)}) and labels ({len(labels)}) differ")
        if labels.size and (labels.max() > first + n - 1 or labels.min() < first):
            raise DataError(f"{where(spec)}: {what} labels must be {first}..{first + n - 1} (found "
                            f"{int(labels.min())}..{int(labels.max())})")
    if x.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{where(spec)}: train images are {x.shape[1:]}, t10k images {x_test.shape[1:]}")
    return RawData(x[:, None], y.astype(np.int64) - first, x_test[:, None], y_test.astype(np.int64) - first,
                   task="classification", uint8_images=True, n_classes=n)
