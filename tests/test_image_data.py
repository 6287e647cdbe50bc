"""MNIST / Fashion-MNIST / CIFAR loaders on tiny files in the real formats; the restricted
unpickler; per-batch normalization and seeded augmentation."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from image_files import make_cifar, make_mnist

from bncli.data import load_data
from bncli.data.transform import crop_flip
from bncli.errors import DataError
from bncli.spec import DataSpec


@pytest.mark.parametrize("subdir, gz", [("MNIST/raw", True), ("", False)])
def test_mnist_idx(tmp_path, subdir, gz):
    make_mnist(tmp_path, subdir=subdir, gz=gz)
    d = load_data(DataSpec(source="mnist", root=tmp_path))
    assert d.x_train.dtype == torch.uint8 and d.input_shape == (1, 28, 28)
    assert d.n_train == 40 and d.x_test.shape[0] == 12 and d.n_out == 10
    x, _y = d.probe_batch(40)
    assert x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std(unbiased=False)) - 1) < 1e-3


def test_fashion_mnist_layout(tmp_path):
    make_mnist(tmp_path, subdir="FashionMNIST/raw")
    d = load_data(DataSpec(source="fashion_mnist", root=tmp_path, subset=10))
    assert d.n_train == 10
    with pytest.raises(DataError, match="FashionMNIST"):
        load_data(DataSpec(source="fashion_mnist", root=tmp_path / "nope"))


@pytest.mark.parametrize("source", ["cifar10", "cifar100"])
@pytest.mark.parametrize("fmt", ["python", "binary"])
def test_cifar_formats_agree(tmp_path, source, fmt):
    make_cifar(tmp_path / fmt, source, fmt)
    d = load_data(DataSpec(source=source, root=tmp_path / fmt))
    assert d.input_shape == (3, 32, 32) and d.x_train.dtype == torch.uint8
    assert d.n_train == 40 and d.x_test.shape[0] == 10
    assert d.n_out == (10 if source == "cifar10" else 100)
    other = "binary" if fmt == "python" else "python"
    make_cifar(tmp_path / other, source, other)
    e = load_data(DataSpec(source=source, root=tmp_path / other))
    assert torch.equal(d.x_train, e.x_train) and torch.equal(d.y_test, e.y_test)


def test_subset_is_fixed_and_seeded(tmp_path):
    make_cifar(tmp_path)
    a = load_data(DataSpec(source="cifar10", root=tmp_path, subset=12, test_subset=4))
    b = load_data(DataSpec(source="cifar10", root=tmp_path, subset=12, test_subset=4))
    c = load_data(DataSpec(source="cifar10", root=tmp_path, subset=12, seed=1))
    assert a.n_train == 12 and a.x_test.shape[0] == 4
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)


def test_missing_files_name_folder_files_and_where_to_get(tmp_path):
    for source, words in (("mnist", "train-images-idx3-ubyte"), ("cifar10", "cifar-10-python.tar.gz"),
                          ("cifar100", "cifar-100-python")):
        with pytest.raises(DataError, match=words) as exc:
            load_data(DataSpec(source=source, root=tmp_path))
        assert str(tmp_path) in str(exc.value) and "http" in str(exc.value)


def test_damaged_files(tmp_path):
    make_cifar(tmp_path, fmt="binary")
    (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(b"\0" * 100)
    with pytest.raises(DataError, match="3073-byte"):
        load_data(DataSpec(source="cifar10", root=tmp_path))
    make_mnist(tmp_path)
    (tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte.gz").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read|IDX"):
        load_data(DataSpec(source="mnist", root=tmp_path))


class _Payload:
    """Unpickling this with pickle.load would create `path` (builtins.open in write mode)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_crafted_cifar_pickle_is_refused_and_runs_nothing(tmp_path, write_spec):
    make_cifar(tmp_path)
    marker = tmp_path / "code-ran"
    evil = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Payload(str(marker))]},
                        protocol=2)
    pickle.loads(evil)  # the payload is live: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(evil)
    with pytest.raises(DataError, match="nothing in it was run"):
        load_data(DataSpec(source="cifar10", root=tmp_path))
    assert not marker.exists()

    from typer.testing import CliRunner

    from bncli.cli import app

    spec = write_spec({"device": "cpu", "data": {"source": "cifar10", "root": str(tmp_path)},
                       "model": {"kind": "cnn", "channels": [4]}, "train": {"steps": 2}})
    res = CliRunner().invoke(app, ["train", str(spec)])
    assert res.exit_code == 2, res.output
    assert not marker.exists() and not os.path.exists(marker)


def test_augmentation_is_paired_and_seeded(tmp_path):
    make_cifar(tmp_path)
    d = load_data(DataSpec(source="cifar10", root=tmp_path, augment=True))
    idx = torch.arange(8)
    a, _ = d.batch(idx, seed=0, step=3)
    b, _ = d.batch(idx, seed=0, step=3)  # another arm of the same seed
    c, _ = d.batch(idx, seed=1, step=3)
    e, _ = d.batch(idx, seed=0, step=4)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, e)
    plain = load_data(DataSpec(source="cifar10", root=tmp_path))
    p, _ = plain.batch(idx, seed=0, step=3)
    assert torch.equal(p, plain.prepare(plain.x_train[:8])) and not torch.equal(a, p)


def test_crop_flip_is_a_padded_crop():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4) + 1
    out = crop_flip(x, 1, seed=5)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(2):
        windows = [padded[i, :, r:r + 4, c:c + 4] for r in range(3) for c in range(3)]
        windows += [w.flip(-1) for w in windows]
        assert any(torch.equal(out[i], w) for w in windows)
