"""Data sources: determinism, split, standardization, npz errors, batch order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bncli.data import batch_indices, load_data
from bncli.errors import DataError
from bncli.spec import DataSpec


def test_synthetic_is_deterministic_and_standardized():
    spec = DataSpec(source="synthetic", n_samples=300, n_features=5, n_classes=3)
    a, b = load_data(spec), load_data(spec)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.n_train == 240 and a.x_test.shape[0] == 60
    assert torch.allclose(a.x_train.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(a.x_train.std(0, unbiased=False), torch.ones(5), atol=1e-4)
    c = load_data(DataSpec(source="synthetic", n_samples=300, n_features=5, n_classes=3, seed=1))
    assert not torch.equal(a.x_train, c.x_train)


def test_regression_teacher():
    d = load_data(DataSpec(source="synthetic", task="regression", n_samples=100, n_features=4, n_outputs=3))
    assert d.task == "regression" and d.n_out == 3 and d.y_train.shape == (80, 3)
    assert d.y_train.dtype == torch.float32


def test_digits_flat_and_image():
    flat = load_data(DataSpec(source="digits"))
    img = load_data(DataSpec(source="digits", shape="image"))
    assert flat.input_shape == (64,) and img.input_shape == (1, 8, 8)
    assert flat.n_out == 10 and flat.n_train + flat.x_test.shape[0] == 1797


def test_npz_with_and_without_test(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(p, X=rng.normal(size=(50, 3)), y=rng.integers(0, 2, 50))
    d = load_data(DataSpec(source="npz", path=p))
    assert d.n_train == 40 and d.task == "classification"
    p2 = tmp_path / "e.npz"
    np.savez(p2, X=rng.normal(size=(50, 3)), y=rng.normal(size=50),
             X_test=rng.normal(size=(7, 3)), y_test=rng.normal(size=7))
    d2 = load_data(DataSpec(source="npz", path=p2))
    assert d2.task == "regression" and d2.x_test.shape == (7, 3) and d2.n_train == 50


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"X": np.zeros((5, 2))}, "'y' missing"),
        ({"X": np.zeros((5, 2)), "y": np.zeros(4)}, "5 examples but y has 4"),
        ({"X": np.zeros((5, 2)), "y": np.zeros(5), "X_test": np.zeros((2, 2))}, "both X_test and y_test"),
        ({"X": np.zeros((5, 2)), "y": np.zeros(5), "X_test": np.zeros((2, 3)), "y_test": np.zeros(2)},
         "X_test has shape"),
    ],
)
def test_npz_errors(tmp_path, arrays, words):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=words):
        load_data(DataSpec(source="npz", path=p))


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_data(DataSpec(source="npz", path=tmp_path / "x.npz"))


def test_batch_order_is_seeded_and_covers_epochs():
    a = list(itertools.islice(batch_indices(100, 30, seed=3), 6))
    b = list(itertools.islice(batch_indices(100, 30, seed=3), 6))
    c = list(itertools.islice(batch_indices(100, 30, seed=4), 6))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    epoch = torch.cat(a[:3])
    assert epoch.unique().numel() == 90  # drop-last: 3 full batches of distinct examples


def test_npz_bad_values_are_data_errors(tmp_path):
    rng = np.random.default_rng(0)
    cases = [
        ({"X": np.array([["a", "b"]] * 5), "y": np.zeros(5)}, "numeric"),
        ({"X": rng.normal(size=(5, 2)), "y": np.array([0, 1, np.nan, 1, 0])}, "y contains NaN"),
        ({"X": rng.normal(size=(6, 2)), "y": rng.normal(size=(6, 2)),
          "X_test": rng.normal(size=(3, 2)), "y_test": rng.normal(size=(3, 3))}, "y_test has 3 outputs"),
    ]
    for i, (arrays, words) in enumerate(cases):
        p = tmp_path / f"bad{i}.npz"
        np.savez(p, **arrays)
        with pytest.raises(DataError, match=words):
            load_data(DataSpec(source="npz", path=p))


def test_npz_explicit_task_wins(tmp_path):
    p = tmp_path / "ints.npz"
    np.savez(p, X=np.random.default_rng(0).normal(size=(40, 3)), y=np.arange(40) % 7)
    assert load_data(DataSpec(source="npz", path=p)).task == "classification"
    d = load_data(DataSpec(source="npz", path=p, task="regression"))
    assert d.task == "regression" and d.y_train.dtype == torch.float32
    q = tmp_path / "floats.npz"
    np.savez(q, X=np.zeros((10, 2)), y=np.linspace(0, 1, 10))
    with pytest.raises(DataError, match="integer class labels"):
        load_data(DataSpec(source="npz", path=q, task="classification"))
