"""The held-out test score of a sweep's best model, computed once, at the end.

The test split (an npz's x_test/y_test, the keras.datasets test split, a folder's test images) never
reaches the trials: selection and early stopping see only the validation split. After the sweep,
the kept checkpoint of the best trial is evaluated once on it: `test_accuracy`, `test_loss`,
accuracy per class and a confusion matrix, recorded on the sweep's run and on the registered model
version.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 512


@dataclass(frozen=True)
class HeldOutScore:
    accuracy: float
    loss: float  # mean cross-entropy of the predicted probabilities (without the weight penalties)
    per_class: dict[str, float]  # class name -> accuracy on its test images (NaN if none)
    confusion: np.ndarray  # [true, predicted] counts
    class_names: tuple[str, ...]
    size: int

    def metrics(self) -> dict[str, float]:
        values = {"test_accuracy": self.accuracy, "test_loss": self.loss, "test_size": float(self.size)}
        keys = [_metric_name(name) for name in self.per_class]
        for i, (acc, key) in enumerate(zip(self.per_class.values(), keys)):
            if np.isfinite(acc):
                values[f"test_accuracy.{key if keys.count(key) == 1 else f'{key}_{i}'}"] = acc
        return values

    def to_json(self) -> dict[str, Any]:
        return {
            "test_accuracy": self.accuracy,
            "test_loss": self.loss,
            "size": self.size,
            "class_names": list(self.class_names),
            "per_class_accuracy": {k: (v if np.isfinite(v) else None) for k, v in self.per_class.items()},
            "confusion_matrix": self.confusion.tolist(),
        }


def _metric_name(name: str) -> str:
    """MLflow metric keys allow (unicode) letters, digits, _ - . and space: other characters become _."""
    return re.sub(r"[^\w.\- ]", "_", name).strip(".") or "_"


def score(probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> HeldOutScore:
    """Accuracy, cross-entropy, per-class accuracy and confusion matrix of predicted probabilities."""
    labels = np.asarray(labels, dtype=np.int64)
    k = probabilities.shape[1]
    names = tuple(class_names) if class_names else tuple(str(i) for i in range(k))
    predicted = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    totals = confusion.sum(axis=1)
    per_class = {names[i]: float(confusion[i, i] / totals[i]) if totals[i] else float("nan") for i in range(k)}
    return HeldOutScore(
        float((predicted == labels).mean()), float(-np.log(picked).mean()), per_class, confusion, names, len(labels)
    )


def _test_batches(dataset: Any) -> Iterator[np.ndarray]:
    """The test images in batches: from memory, or decoded from the folder batch by batch (streamed
    data never sits whole in the driver)."""
    if dataset.stream is None:
        for i in range(0, len(dataset.x_test), BATCH):
            yield dataset.x_test[i : i + BATCH]
        return
    from sweeps.data.folders import decode_many

    spec = dataset.stream
    for i in range(0, len(spec.test_paths), BATCH):
        pixels, _ = decode_many(spec.test_paths[i : i + BATCH], spec.size, spec.channels)
        yield pixels.astype(np.float32) / np.float32(255.0)


def evaluate(model: Any, dataset: Any) -> HeldOutScore:
    parts = [np.asarray(model.predict(batch, batch_size=BATCH, verbose=0)) for batch in _test_batches(dataset)]
    return score(np.concatenate(parts), dataset.y_test, dataset.class_names)


def confusion_figure(result: HeldOutScore, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(result.class_names)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * k + 2), max(3.5, 0.5 * k + 1.5)))
    ax.imshow(result.confusion, cmap="Blues")
    ax.set_xticks(range(k), result.class_names, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set_yticks(range(k), result.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Test set: accuracy {result.accuracy:.3f} on {result.size} images")
    top = result.confusion.max() or 1
    for (i, j), count in np.ndenumerate(result.confusion):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > top / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def record(tracker: Any, result: HeldOutScore, registered: tuple[str, str] | None, prefix: str = "") -> None:
    """The score on the sweep's run (metrics, JSON, confusion-matrix plot) and on the registered
    model version (tags), so the registry shows how the champion does on unseen data. `prefix`
    (e.g. "champion_", "baseline_") keeps a second model's score beside the registered one's."""
    run_id = tracker.parent_run_id
    tracker.log_metrics(run_id, {f"{prefix}{k}": v for k, v in result.metrics().items()})
    tracker.log_dict(run_id, result.to_json(), f"test/{prefix}test_score.json")
    with tempfile.TemporaryDirectory(prefix="sweeps-test-") as folder:
        tracker.log_artifact(run_id, confusion_figure(result, Path(folder) / f"{prefix}confusion_matrix.png"), "test")
    if registered is not None:
        name, version = registered
        tracker.set_version_tags(
            name,
            version,
            {
                "test_accuracy": f"{result.accuracy:.6f}",
                "test_loss": f"{result.loss:.6f}",
                "test_per_class_accuracy": json.dumps(
                    {k: (round(v, 6) if np.isfinite(v) else None) for k, v in result.per_class.items()}, ensure_ascii=False
                ),
            },
        )


def score_best_model(
    tracker: Any, model: Any, dataset: Any, registered: tuple[str, str] | None, prefix: str = ""
) -> HeldOutScore | None:
    """Evaluate a model on the test split, once, if the dataset has one, and record it."""
    if not dataset.has_test:
        return None
    result = evaluate(model, dataset)
    record(tracker, result, registered, prefix)
    return result
