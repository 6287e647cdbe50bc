"""A pickle reader that runs no code: only numpy's array reconstruction is admitted.

The CIFAR "python version" files are pickles. `pickle.load` would call whatever a crafted file
names (os.system, eval, ...); this reader resolves exactly the globals a numpy array needs
(`numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`; and `_codecs.encode` with
latin1, how Python 3 writes bytes at protocol 2) and refuses every other,
so loading a file can build dicts, lists, bytes, numbers and numeric numpy arrays, nothing else.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__new__,  # replaced below
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct(ndarray, (0,), b'b')`: an empty array whose BUILD state follows.
    Only a plain ndarray may be made (a subclass's __setstate__ could be anything)."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only numpy.ndarray may be reconstructed")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _encode(text: Any, encoding: str = "utf-8") -> bytes:
    """How a Python 3 pickle of protocol 2 spells bytes: `_codecs.encode(str, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only _codecs.encode(str, 'latin1') is allowed")
    return text.encode("latin1")


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """numpy's protocol-5 form: an array over raw bytes (numeric dtypes only)."""
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise pickle.UnpicklingError("an array of Python objects (only numeric arrays are allowed)")
    return np.frombuffer(bytes(buf), dt).reshape(shape, order=order).copy()


for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _reconstruct
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _frombuffer
_ALLOWED[("_codecs", "encode")] = _encode


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in _ALLOWED; anything else is an UnpicklingError."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: this file may only hold numeric arrays"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def _check(obj: Any, depth: int = 0) -> None:
    """Object-dtype arrays could hide further objects: admit numeric arrays only."""
    if depth > 8:
        raise pickle.UnpicklingError("nested too deeply")
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise pickle.UnpicklingError("an array of Python objects (only numeric arrays are allowed)")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check(k, depth + 1)
            _check(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check(v, depth + 1)


def safe_load(data: bytes) -> Any:
    """Unpickle `data` (Python 2 pickles too: bytes keys) without running code; UnpicklingError
    (or ValueError/EOFError for a damaged file) when it holds anything but numeric data."""
    obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    _check(obj)
    return obj
