"""The champion's params trained again on train + validation for its best epoch count (refit=true),
as scikit-learn's searches refit their best estimator on all the data they were given.

Keras only: the driver calls it after the sweep, with the data it loaded and the champion's params
and best epoch; it returns the fitted model, which the sweep test-scores once and registers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from models.conv2d import build_conv2d, keras


class RefitDiverged(FloatingPointError):
    """The refit's loss became NaN or infinite: no model to register."""


def refit_conv2d(
    params: Mapping[str, Any],
    x: Any,
    y: np.ndarray | None,
    epochs: int,
    seed: int,
    input_shape: tuple[int, ...],
    num_classes: int,
) -> keras.Model:
    """A fresh model of `params`, seeded as the trials are (keras.utils.set_random_seed(seed)),
    fitted on (x, y) for `epochs` epochs with the params' batch size, shuffled, no validation.
    With y None, x is a dataset of (images, labels) batches, shuffled and batched already (a
    streamed folder: sweeps.worker.feed.train_and_validation_batches)."""
    if epochs < 1:
        raise ValueError(f"a refit needs at least one epoch, got {epochs}")
    keras.utils.set_random_seed(seed)
    model = build_conv2d(params, input_shape, num_classes)
    batching = {"batch_size": int(params["batch_size"]), "shuffle": True} if y is not None else {}
    history = model.fit(x, y, epochs=int(epochs), callbacks=[keras.callbacks.TerminateOnNaN()], verbose=0, **batching).history
    loss = history["loss"][-1]
    if len(history["loss"]) < epochs or not math.isfinite(loss):
        raise RefitDiverged(f"the refit's training loss became {loss} at epoch {len(history['loss'])}")
    return model


def train_and_validation(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """The arrays a refit trains on: the sweep's training and validation splits, in that order."""
    return np.concatenate([dataset.x_train, dataset.x_val]), np.concatenate([dataset.y_train, dataset.y_val])
