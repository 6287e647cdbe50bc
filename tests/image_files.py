"""Tiny files in the real formats (IDX, CIFAR python and binary) for the loader tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    blob = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    blob += arr.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(blob))
    else:
        path.write_bytes(blob)


def make_mnist(root: Path, n_train: int = 40, n_test: int = 12, subdir: str = "MNIST/raw",
               gz: bool = True, seed: int = 0) -> Path:
    folder = root / subdir if subdir else root
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{stem}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(folder / f"{stem}-labels-idx1-ubyte", np.arange(n) % 10, gz)
    return root


def _images(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % classes
    # a class-dependent brightness so a few steps can learn something
    x = rng.integers(0, 128, (n, 3072)) + (y[:, None] * 127 // max(1, classes - 1))
    return x.astype(np.uint8), y


def make_cifar(root: Path, source: str = "cifar10", fmt: str = "python", per_batch: int = 8,
               n_test: int = 10, seed: int = 0) -> Path:
    """CIFAR-10: 5 train batches of `per_batch` + a test batch; CIFAR-100: train + test."""
    rng = np.random.default_rng(seed)
    classes = 10 if source == "cifar10" else 100
    if source == "cifar10":
        sub = "cifar-10-batches-py" if fmt == "python" else "cifar-10-batches-bin"
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        sizes = [per_batch] * 5 + [n_test]
    else:
        sub = "cifar-100-python" if fmt == "python" else "cifar-100-binary"
        names, sizes = ["train", "test"], [5 * per_batch, n_test]
    folder = root / sub
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in zip(names, sizes):
        x, y = _images(rng, n, classes)
        if fmt == "python":
            key = b"labels" if source == "cifar10" else b"fine_labels"
            doc = {b"batch_label": b"x", key: [int(v) for v in y], b"data": x}
            if source == "cifar100":
                doc[b"coarse_labels"] = [int(v) // 5 for v in y]
            (folder / name).write_bytes(pickle.dumps(doc, protocol=2))
        else:
            lab = y[:, None] if source == "cifar10" else np.stack([y // 5, y], axis=1)
            table = np.concatenate([lab.astype(np.uint8), x], axis=1)
            (folder / f"{name}.bin").write_bytes(table.tobytes())
    return root
