"""One preprocessing for training, test split and predict (defect 7), and a digest over every array (defect 6)."""

import numpy as np
import pytest

from sweeps.data.datasets import load_dataset
from tests.conftest import main_in_process


def _float_images(tmp_path, test_top=60.0):
    """Float images in [0, 255] for training; a test split that happens to be darker."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (60, 8, 8)).astype(np.float32)
    x[0, 0, 0] = 255.0
    xt = rng.uniform(0, test_top, (10, 8, 8)).astype(np.float32)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x, y_train=np.arange(60) % 3, x_test=xt, y_test=np.arange(10) % 3)
    return path, x, xt


def test_the_test_split_is_scaled_like_the_training_split(tmp_path):
    path, x, xt = _float_images(tmp_path)
    ds = load_dataset("npz", str(path), 0.2, None, 0)
    assert ds.scale == 255.0 and ds.preprocessing()["divide_by"] == 255.0
    np.testing.assert_allclose(ds.x_test[..., 0], xt / 255.0, rtol=1e-6)  # not xt / xt.max()


def test_the_digest_covers_the_test_split(tmp_path):
    path, x, xt = _float_images(tmp_path)
    first = load_dataset("npz", str(path), 0.2, None, 0).digest
    changed = xt.copy()
    changed[-1, -1, -1] += 1.0
    np.savez(path, x_train=x, y_train=np.arange(60) % 3, x_test=changed, y_test=np.arange(10) % 3)
    assert load_dataset("npz", str(path), 0.2, None, 0).digest != first
    np.savez(path, x_train=x, y_train=np.arange(60) % 3, x_test=xt, y_test=(np.arange(10) + 1) % 3)
    assert load_dataset("npz", str(path), 0.2, None, 0).digest != first
    np.savez(path, x_train=x, y_train=np.arange(60) % 3)
    without = load_dataset("npz", str(path), 0.2, None, 0).digest
    assert without != first


def test_predict_applies_the_training_preprocessing_recorded_with_the_model(tmp_path, capsys):
    """A model logged with its training divisor (255) predicts a dark batch (max 60) as the trained
    model sees it: divided by 255, not by the batch's own maximum."""
    from models.conv2d import build_conv2d
    from tests.models.test_plan import BASE
    from tracking import SweepTracker, load_model_and_preprocessing

    path, _, xt = _float_images(tmp_path)
    ds = load_dataset("npz", str(path), 0.2, None, 0)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "e", tmp_path / "art")
    parent = tracker.start_sweep("s", {}, {}, "")
    model = build_conv2d({**BASE, "filters": 4, "dense_units": 8, "blocks": 1}, ds.input_shape, 3)
    model_uri = tracker.log_keras_model(parent, model, ds.preprocessing())
    _, recorded = load_model_and_preprocessing(uri, model_uri)
    assert recorded == {"divide_by": 255.0, "dtype": "float32", "layout": "NHWC"}

    batch = tmp_path / "batch.npz"
    np.savez(batch, x=xt)
    code, out, err = main_in_process(capsys, "predict", "--model", model_uri, "--input", str(batch), f"tracking.uri={uri}")
    assert code == 0
    got = np.array([float(line.split("\t")[2]) for line in out.splitlines()])
    expected = model.predict((xt / 255.0)[..., None].astype(np.float32), verbose=0).max(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert "without its preprocessing" not in err


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_images_keep_their_dtype_range(tmp_path, dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 40, (30, 8, 8)).astype(dtype)  # dark, but the range is the dtype's
    path = tmp_path / "i.npz"
    np.savez(path, x_train=x, y_train=np.arange(30) % 2)
    ds = load_dataset("npz", str(path), 0.2, None, 0)
    assert ds.scale == float(np.iinfo(dtype).max)
