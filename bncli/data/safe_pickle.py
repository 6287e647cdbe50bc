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


class _NdarrayName:
    """What `numpy.ndarray` resolves to: the name _reconstruct's first argument gives, never the
    class itself, so a file cannot call `ndarray(shape, dtype, buffer, offset, strides)` (a view of
    uninitialised memory, or zero strides asking for terabytes)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("numpy.ndarray(...) may not be called: only numpy's own array pickles "
                                     "are read")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NdarrayName,
    ("numpy", "dtype"): np.dtype,
}


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct(ndarray, (0,), b'b')`: an EMPTY array whose BUILD state (shape, dtype
    and the bytes, from the file) follows. An array of another size would be uninitialised memory
    if no state followed; only a plain ndarray may be made (a subclass's __setstate__ could be
    anything)."""
    if subtype is not _NdarrayName:
        raise pickle.UnpicklingError("only numpy.ndarray may be reconstructed")
    if not isinstance(shape, tuple) or shape != (0,):
        raise pickle.UnpicklingError("numpy arrays are rebuilt from the bytes in the file only (shape (0,))")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _bytes(*args: Any) -> bytes:
    """How a Python 3 pickle of protocol 2 spells empty bytes: `__builtin__.bytes()`."""
    if args:
        raise pickle.UnpicklingError("only bytes() (empty) is allowed")
    return b""


def _encode(text: Any, encoding: str = "utf-8") -> bytes:
    """How a Python 3 pickle of protocol 2 spells bytes: `_codecs.encode(str, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only _codecs.encode(str, 'latin1') is allowed")
    return text.encode("latin1")


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """numpy's protocol-5 form: an array over raw bytes (numeric dtypes only)."""
    if not isinstance(buf, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        raise pickle.UnpicklingError("an array's buffer must be bytes from the file")
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise pickle.UnpicklingError("an array of Python objects (only numeric arrays are allowed)")
    return np.frombuffer(bytes(buf), dt).reshape(shape, order=order).copy()


for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _reconstruct
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _frombuffer
_ALLOWED[("_codecs", "encode")] = _encode
for _mod in ("__builtin__", "builtins"):
    _ALLOWED[(_mod, "bytes")] = _bytes


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


def _check(obj: Any, depth: int = 0) -> int:
    """Object-dtype arrays could hide further objects: admit numeric arrays only, contiguous and
    owning their bytes. Returns the bytes the arrays hold (checked against the file's size)."""
    if depth > 8:
        raise pickle.UnpicklingError("nested too deeply")
    n = 0
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise pickle.UnpicklingError("an array of Python objects (only numeric arrays are allowed)")
        if not (obj.flags.c_contiguous or obj.flags.f_contiguous) or (0 in obj.strides and obj.size > 1):
            raise pickle.UnpicklingError("an array that is not contiguous (only plain arrays are allowed)")
        n += obj.nbytes
    elif isinstance(obj, dict):
        for k, v in obj.items():
            n += _check(k, depth + 1) + _check(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            n += _check(v, depth + 1)
    return n


def safe_load(data: bytes) -> Any:
    """Unpickle `data` (Python 2 pickles too: bytes keys) without running code; UnpicklingError
    (or ValueError/EOFError for a damaged file) when it holds anything but numeric data, or
    arrays larger than the bytes the file holds."""
    obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    if _check(obj) > len(data):
        raise pickle.UnpicklingError("its arrays hold more bytes than the file does")
    return obj
