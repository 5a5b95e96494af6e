"""Classify images with a logged or registered model (`python -m sweeps predict --model URI --input FILE`).

The images are preprocessed exactly as the training data was: the same function
(`sweeps.data.datasets.as_images`: channel axis, float32) with the divisor recorded with the model at
training time (`Dataset.preprocessing`), never one computed from the images at hand. The model is
loaded from the tracking store named explicitly (`tracking.load_model_and_preprocessing`). One line per image on stdout:
`index<TAB>predicted_class<TAB>probability`, the class by name where the model was trained on an
image folder (its class names are recorded with it). `--input` may also be an image file or a folder
of images (decoded and resized to the model's input as in training; one line per file, by path). Bad input
raises InputError, before any model is loaded where it can; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.core.errors import DatasetError, InputError
from sweeps.data.datasets import as_images

ARRAY_KEYS = ("x", "x_test", "x_train")  # the first one present is classified
BATCH = 512


def load_images(input_path: Path, preprocessing: dict[str, Any] | None = None) -> tuple[str, np.ndarray]:
    """(the array's name, images as the model saw them in training: (N, H, W, C) float32, divided
    by the training divisor in `preprocessing`; without one, by their own range as before)."""
    file = Path(input_path).expanduser()
    if not file.is_file():
        raise DatasetError("input", f"{file} does not exist", "give --input an existing .npz file")
    fix = "write it with numpy.savez(path, x=images)"
    try:
        npz = np.load(file, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(
            "input", f"{file} is not a readable .npz archive ({type(exc).__name__}: {str(exc)[:80]})", fix
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DatasetError("input", f"{file} is a single .npy array, not an .npz archive", fix)
    with npz:
        key = next((k for k in ARRAY_KEYS if k in npz.files), None)
        if key is None:
            raise DatasetError(
                "input",
                f"{file} has no array named {', '.join(ARRAY_KEYS)} (has {', '.join(npz.files) or 'nothing'})",
                "save the images with numpy.savez(path, x=images)",
            )
        try:
            raw = np.asarray(npz[key])
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise DatasetError(f"input {key}", f"cannot be read ({type(exc).__name__}: {exc})", fix) from None
    scale = float(preprocessing["divide_by"]) if preprocessing and "divide_by" in preprocessing else None
    images = as_images(raw, f"input {key}", scale)
    if len(images) == 0:
        raise DatasetError(f"input {key}", "holds no images", "save at least one image")
    return key, images


def predict(model: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, its probability) per image."""
    probabilities = np.asarray(model.predict(images, batch_size=BATCH, verbose=0))
    classes = probabilities.argmax(axis=1)
    return classes, probabilities[np.arange(len(classes)), classes]


def image_files(input_path: Path) -> list[Path] | None:
    """The image files `--input` names (a file or a folder, searched recursively), or None for an .npz."""
    from sweeps.data.folders import IMAGE_SUFFIXES

    path = Path(input_path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise DatasetError(
                "input",
                f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                "give a folder of images, an image file or an .npz",
            )
        return files
    return [path] if path.name.lower().endswith(IMAGE_SUFFIXES) and path.is_file() else None


def decode_images(files: list[Path], input_shape: tuple[int, ...]) -> np.ndarray:
    """Images as the model saw them in training: the folder loader's decoder, scaled to [0, 1]."""
    from sweeps.data.folders import CorruptImage, decode_file

    height, width, channels = input_shape
    out = np.zeros((len(files), height, width, channels), np.float32)
    for i, file in enumerate(files):
        try:
            out[i] = decode_file(str(file), (height, width), channels) / np.float32(255.0)
        except CorruptImage as exc:
            raise DatasetError("input", f"{file} cannot be decoded as an image ({exc})", "remove or replace the file") from None
    return out


@dataclass(frozen=True)
class Predictions:
    """What `classify` found: one (item, label, probability) per image, and notes for the user."""

    rows: list[tuple[str | int, str | int, float]]  # item: file path or index; label: class name or index
    notes: list[str] = field(default_factory=list)


def classify(model_uri: str, input_path: Path, tracking_uri: str) -> Predictions:
    """Classify the images `input_path` names with the model `model_uri` from the store at
    `tracking_uri`; raises InputError (before any model is loaded, where it can) for bad input."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    files = image_files(input_path)
    if not files:
        load_images(input_path)  # bad input is refused before any model is loaded

    import models.conv2d  # noqa: F401  (TensorFlow imported here, without its start-up lines)
    from tracking import RegistryError, class_names, load_model_and_preprocessing, store_exists

    if not store_exists(tracking_uri):
        raise InputError(
            "tracking.uri",
            f"no MLflow store at {tracking_uri}",
            "run a sweep first, or set output_dir=<the sweep's folder> or tracking.uri=...",
        )
    try:
        model, preprocessing = load_model_and_preprocessing(tracking_uri, model_uri)
    except RegistryError as exc:
        raise InputError(
            "model",
            str(exc),
            "give --model models:/<name>@champion (a registered model), models:/m-<id> (a sweep's best model, "
            "tag sweeps.best_model_uri of its MLflow run) or runs:/<run id>/model",
        ) from None
    expected = tuple(int(d) for d in model.input_shape[1:])
    notes = []
    if files:  # decoded as the folder loader does for training
        key, images = "files", decode_images(files, expected)
    else:
        if preprocessing is None:
            notes.append(f"{model_uri} was logged without its preprocessing; images are scaled by their own range")
        key, images = load_images(input_path, preprocessing)
    if images.shape[1:] != expected:
        got, want = "x".join(map(str, images.shape[1:])), "x".join(map(str, expected))
        raise InputError(
            f"input {key}",
            f"images are {got} but model {model_uri} takes {want}",
            f"give {want} images (height x width x channels), as in its training data",
        )
    classes, probabilities = predict(model, images)
    names = class_names(tracking_uri, model_uri)
    rows = []
    for index, (cls, prob) in enumerate(zip(classes, probabilities)):
        label = names[int(cls)] if names and int(cls) < len(names) else int(cls)
        rows.append((str(files[index]) if files else index, label, float(prob)))
    return Predictions(rows, notes)
