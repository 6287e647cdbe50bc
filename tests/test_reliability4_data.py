"""Issue 30 (first part), data files: bounded decompression, the restricted unpickler's ndarray
hole, IDX sizes as Python integers, empty test sets and the messages about labels and shapes."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import yaml
from image_files import make_cifar, make_mnist
from typer.testing import CliRunner

from bncli.cli import app


def _validate(tmp_path, data: dict, model: dict | None = None):
    spec = {"name": "d", "device": "cpu", "data": data, "model": model or {"kind": "mlp", "hidden": [4]},
            "train": {"steps": 2, "batch_size": 4}}
    p = tmp_path / "d.yaml"
    p.write_text(yaml.safe_dump(spec))
    return CliRunner().invoke(app, ["validate", str(p)])


def _exit_2(res, *words):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output
    for w in words:
        assert w in res.output, res.output


def test_mnist_gz_is_read_only_as_far_as_its_header_says(tmp_path, monkeypatch):
    root = make_mnist(tmp_path / "data", n_train=40, n_test=12)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    header = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 40, 28, 28)
    # the declared bytes, then 64 MB more (a bomb of concatenated members is the same, larger)
    with gzip.open(images, "wb") as f:
        f.write(header + bytes(40 * 28 * 28))
    with open(images, "ab") as f:
        f.write(gzip.compress(bytes(64 << 20), compresslevel=1))
    asked: list[int] = []
    real = gzip.GzipFile.read

    def read(self, size=-1):
        asked.append(size)
        return real(self, size)

    monkeypatch.setattr(gzip.GzipFile, "read", read)
    _exit_2(_validate(tmp_path, {"source": "mnist", "root": str(root)}), "more follow")
    assert asked and all(0 <= n <= 40 * 28 * 28 + 1 for n in asked), asked


def test_idx_sizes_are_multiplied_without_overflow(tmp_path):
    root = make_mnist(tmp_path / "data", gz=False)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 2**31, 2**31, 4))
    _exit_2(_validate(tmp_path, {"source": "mnist", "root": str(root)}), "IDX header says")


def test_fashion_mnist_without_test_images_is_refused_at_validate(tmp_path):
    root = make_mnist(tmp_path / "data", n_test=0, subdir="FashionMNIST/raw")
    _exit_2(_validate(tmp_path, {"source": "fashion_mnist", "root": str(root)}), "no held-out")


class _NdarrayCall:
    """pickles as numpy.ndarray(shape, dtype, buffer, offset, strides): the hole."""

    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return (np.ndarray, self.args)


@pytest.mark.parametrize("data", [
    _NdarrayCall((700000, 3072), np.dtype("u1")),  # 2 GiB of uninitialised memory
    _NdarrayCall((10**6, 3072), np.dtype("u1"), b"x" * 8, 0, (0, 0)),  # zero strides
])
def test_the_cifar_unpickler_makes_arrays_only_from_the_file_s_bytes(tmp_path, data):
    root = make_cifar(tmp_path / "data")
    test_batch = root / "cifar-10-batches-py" / "test_batch"
    blob = pickle.dumps({b"data": data, b"labels": _NdarrayCall((700000,), np.dtype("i8"))}, protocol=2)
    assert len(blob) < 400
    test_batch.write_bytes(blob)
    res = _validate(tmp_path, {"source": "cifar10", "root": str(root)})
    _exit_2(res, "test_batch", "nothing in it was run")
    assert "700000" not in res.output


def _cifar_test_batch(tmp_path, doc):
    root = make_cifar(tmp_path / "data")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(doc, protocol=2))
    return _validate(tmp_path, {"source": "cifar10", "root": str(root)})


@pytest.mark.parametrize("labels, word", [(["a"] * 10, "strings"), ([0.5] * 10, "floats")])
def test_cifar_labels_of_the_wrong_type_say_so(tmp_path, labels, word):
    x = np.zeros((10, 3072), np.uint8)
    res = _cifar_test_batch(tmp_path, {b"data": x, b"labels": labels})
    _exit_2(res, "labels must be integer class numbers", word)
    assert "shape" not in res.output


def test_an_empty_cifar_test_batch_is_read_then_refused_as_empty(tmp_path):
    res = _cifar_test_batch(tmp_path, {b"data": np.zeros((0, 3072), np.uint8), b"labels": []})
    _exit_2(res, "no held-out")
    assert "__builtin__" not in res.output


@pytest.mark.parametrize("shape", [(60,), (60, 1, 2, 3, 3)])
def test_npz_x_of_an_unsupported_rank_is_refused_alike(tmp_path, shape):
    rng = np.random.default_rng(0)
    path = tmp_path / "a.npz"
    np.savez(path, X=rng.normal(size=shape).astype(np.float32), y=rng.integers(0, 2, 60))
    _exit_2(_validate(tmp_path, {"source": "npz", "path": str(path)}), f"{len(shape)}-D", "2-D")
