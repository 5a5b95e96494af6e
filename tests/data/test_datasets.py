"""Loaders, preprocessing and the content digest."""

import numpy as np
import pytest

from sweeps.data.datasets import DatasetError, content_digest, load_dataset


def test_digits_is_embedded_and_split_by_seed():
    a = load_dataset("digits", val_fraction=0.2, seed=0)
    b = load_dataset("digits", val_fraction=0.2, seed=1)
    assert a.input_shape == (8, 8, 1) and a.num_classes == 10
    assert len(a.x_train) + len(a.x_val) == 1797
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0 and a.x_train.dtype == np.float32
    assert not np.array_equal(a.y_val, b.y_val)
    assert a.digest != b.digest  # the split is part of the version


def test_digest_changes_when_one_pixel_changes():
    x = np.random.default_rng(0).integers(0, 255, (20_000, 8, 8), dtype=np.uint8)  # > MLflow's 10,000 values
    y = np.arange(20_000) % 10
    changed = x.copy()
    changed[-1, -1, -1] ^= 1
    assert content_digest(x, y) != content_digest(changed, y)
    assert content_digest(x, y) == content_digest(x.copy(), y.copy())


def test_npz_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (50, 12, 12, 3), dtype=np.uint8),
        y_train=np.arange(50) % 3,
        x_test=rng.integers(0, 256, (10, 12, 12, 3), dtype=np.uint8),
        y_test=np.arange(10) % 3,
    )
    d = load_dataset("npz", str(path), val_fraction=0.2)
    assert d.input_shape == (12, 12, 3) and d.num_classes == 3
    assert len(d.x_val) == 10 and d.x_test is not None and d.x_train.max() <= 1.0
    assert d.source == path.resolve().as_uri()


def _npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    ("make", "key", "words"),
    [
        (lambda p: str(p / "missing.npz"), "dataset.path", "does not exist"),
        (lambda p: (p / "c.npz").write_bytes(b"not a zip") and str(p / "c.npz"), "dataset.path", "not a readable .npz"),
        (lambda p: _npz(p, x=np.zeros((4, 8, 8))), "dataset.path", "lacks x_train, y_train"),
        (lambda p: _npz(p, x_train=np.zeros((4, 8, 8)), y_train=np.arange(3)), "dataset y_train", "3 labels for 4 images"),
        (lambda p: _npz(p, x_train=np.array(["a"] * 4), y_train=np.arange(4)), "dataset x_train", "dtype"),
        (lambda p: _npz(p, x_train=np.zeros((4, 8)), y_train=np.arange(4)), "dataset x_train", "shape"),
        (lambda p: _npz(p, x_train=np.zeros((4, 8, 8)), y_train=np.array([0, 1, -1, 2])), "dataset y_train", "negative"),
        (lambda p: _npz(p, x_train=np.zeros((4, 8, 8)), y_train=np.array([0.5, 1, 1, 2])), "dataset y_train", "whole numbers"),
        (lambda p: _npz(p, x_train=np.full((4, 8, 8), np.nan), y_train=np.arange(4)), "dataset x_train", "NaN"),
        (
            lambda p: _npz(
                p, x_train=np.zeros((4, 8, 8)), y_train=np.arange(4), x_test=np.zeros((2, 8, 8)), y_test=np.array([0, 9])
            ),
            "dataset y_test",
            "never occurs",
        ),
    ],
)
def test_bad_npz_files(tmp_path, make, key, words):
    with pytest.raises(DatasetError) as info:
        load_dataset("npz", make(tmp_path))
    assert info.value.key == key and words in str(info.value)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DatasetError, match="use one of digits, mnist, fashion_mnist, cifar10, npz"):
        load_dataset("imagenet")


@pytest.mark.slow
def test_keras_download_failure_says_how_to_use_a_local_file(monkeypatch, tmp_path):
    import socket

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached copy

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(DatasetError, match=r"downloading keras\.datasets\.mnist failed.*dataset\.path="):
        load_dataset("mnist")


def test_digits_read_from_sklearns_file_equal_its_own_loader():
    from sklearn.datasets import load_digits

    from sweeps.data.datasets import _digits_arrays

    images, target = _digits_arrays()
    bunch = load_digits()
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(target, bunch.target)
    assert images.shape == (1797, 8, 8)
