"""Your own arrays: an .npz file with X and y (optional X_test, y_test), numeric only (no pickles)."""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np

from bncli.data.base import RawData
from bncli.errors import DataError
from bncli.spec import DataSpec

TEST_LABELS = ("X_test", "y_test")
# the most bytes the arrays of one .npz may hold once loaded (their sizes are read from the
# archive's headers before anything is decompressed: a 4 MB file of zeros can unpack to 4 GB)
MAX_ARRAY_BYTES = 8 << 30


def _regular_file(path) -> bool:
    import os
    import stat

    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _available_memory() -> int | None:
    import os

    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def where(spec: DataSpec) -> str:
    return str(spec.path)


def describe(spec: DataSpec) -> str:
    return "npz"


def key_material(spec: DataSpec) -> str:
    """The file's bytes count in a job's key (a file changed in place is new data)."""
    h = hashlib.sha256()
    if not _regular_file(spec.path):  # /dev/zero or a FIFO would never end
        return "not a regular file"
    try:
        with open(spec.path, "rb") as f:  # type: ignore[arg-type]
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "unreadable"
    return h.hexdigest()


def load(spec: DataSpec, rng: np.random.Generator) -> RawData:
    x, y, x_test, y_test = _read(spec)
    return RawData(x, y, x_test, y_test)


def _read(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    path = spec.path
    assert path is not None
    try:
        if not path.exists():
            raise DataError(f"{path}: data.path: no such file")
        if path.is_dir():
            raise DataError(f"{path}: data.path: is a directory, not an .npz file")
        if not _regular_file(path):  # a device, a FIFO: reading it could hang
            raise DataError(f"{path}: data.path: not a regular file (give an .npz file)")
        # np.load guesses .npy or pickle for anything else and answers with allow_pickle advice
        if not zipfile.is_zipfile(path):
            raise DataError(
                f"{path}: data.path: not an .npz file (expected the zip archive numpy.savez writes)"
            )
    except (OSError, ValueError) as exc:  # permissions, a NUL byte in the name, ...
        raise DataError(f"{path}: data.path: cannot read: {exc}") from None
    _check_sizes(path)
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


def _check_sizes(path) -> None:
    """The arrays' unpacked size, from the zip headers, against MAX_ARRAY_BYTES and free memory."""
    try:
        with zipfile.ZipFile(path) as z:
            total = sum(i.file_size for i in z.infolist())
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise DataError(f"{path}: data.path: not a readable .npz file ({exc})") from None
    free = _available_memory()
    limit = min(MAX_ARRAY_BYTES, free // 2) if free else MAX_ARRAY_BYTES
    if total > limit:
        raise DataError(f"{path}: data.path: the arrays unpack to {total / 2**30:.1f} GiB, more than the "
                        f"{limit / 2**30:.1f} GiB allowed (min of 8 GiB and half the free memory)")
