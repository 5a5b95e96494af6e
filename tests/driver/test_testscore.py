"""The held-out test score, a pure function of predicted probabilities and labels (table-tested)."""

import numpy as np
import pytest

from sweeps.driver.testscore import HeldOutScore, confusion_figure, score


def test_accuracy_loss_per_class_and_confusion():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.1, 0.1, 0.8]])
    result = score(probs, np.array([0, 1, 1, 2]), ("cat", "dog", "花"))
    assert result.accuracy == pytest.approx(0.75)
    assert result.loss == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.8])))
    assert result.per_class == {"cat": 1.0, "dog": 0.5, "花": 1.0}
    assert result.confusion.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert result.metrics() == {
        "test_accuracy": 0.75,
        "test_loss": pytest.approx(result.loss),
        "test_size": 4.0,
        "test_accuracy.cat": 1.0,
        "test_accuracy.dog": 0.5,
        "test_accuracy.花": 1.0,
    }


@pytest.mark.parametrize(
    "names,keys",
    [
        ((), ["test_accuracy.0", "test_accuracy.1"]),  # array datasets: labels are the names
        (("a/b", "a:b"), ["test_accuracy.a_b_0", "test_accuracy.a_b_1"]),  # characters MLflow refuses, and a clash
    ],
)
def test_metric_keys_are_valid_and_unique(names, keys):
    result = score(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1]), names)
    assert sorted(k for k in result.metrics() if k.startswith("test_accuracy.")) == keys


def test_a_class_without_test_images_has_no_per_class_metric_and_zero_probability_is_finite(tmp_path):
    result = score(np.array([[0.0, 1.0], [0.0, 1.0]]), np.array([0, 0]), ("x", "y"))
    assert result.accuracy == 0.0 and np.isfinite(result.loss)
    assert np.isnan(result.per_class["y"]) and "test_accuracy.y" not in result.metrics()
    assert result.to_json()["per_class_accuracy"] == {"x": 0.0, "y": None}
    path = confusion_figure(result, tmp_path / "cm.png")
    assert path.stat().st_size > 1000 and isinstance(result, HeldOutScore)


def test_the_dataset_benchmark_runs_on_a_small_folder():
    from benchmarks.datasets import digest_figures

    figures = digest_figures(60, repeats=1)
    assert figures["files"] == 60 and figures["b2sum_s"] > 0 and figures["manifest_second_s"] > 0


def test_an_npz_test_split_is_scored_on_a_real_model(tmp_path):
    from models.conv2d import build_conv2d
    from sweeps.data.datasets import load_dataset
    from sweeps.driver.testscore import evaluate
    from tests.models.test_plan import BASE

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (60, 8, 8), dtype=np.uint8), np.arange(60) % 3
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
    ds = load_dataset("npz", str(tmp_path / "d.npz"))
    assert ds.has_test and "x_test" not in ds.arrays()  # trials never receive the test split
    model = build_conv2d(BASE, ds.input_shape, ds.num_classes)
    result = evaluate(model, ds)
    predicted = model.predict(ds.x_test, verbose=0).argmax(axis=1)
    assert result.size == 12 and result.accuracy == pytest.approx(float((predicted == ds.y_test).mean()))
    assert result.class_names == ("0", "1", "2") and result.confusion.sum() == 12
