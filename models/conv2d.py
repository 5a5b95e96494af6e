"""params dict -> compiled keras.Model: N Conv2D blocks, optional pooling, dense head."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from models.native_log import tensorflow_start_up_filtered

with tensorflow_start_up_filtered():
    import keras

from models.plan import block_arg, block_filters


def regularizer(kind: str, strength: float) -> keras.regularizers.Regularizer | None:
    if kind == "none":
        return None
    if kind == "l1":
        return keras.regularizers.L1(l1=strength)
    if kind == "l2":
        return keras.regularizers.L2(l2=strength)
    if kind == "l1_l2":
        return keras.regularizers.L1L2(l1=strength, l2=strength)
    raise ValueError(f"unknown regularizer {kind!r}")


def constraint(kind: str, value: float) -> keras.constraints.Constraint | None:
    if kind == "none":
        return None
    if kind == "max_norm":
        return keras.constraints.MaxNorm(max_value=value)
    if kind == "non_neg":
        return keras.constraints.NonNeg()
    if kind == "unit_norm":
        return keras.constraints.UnitNorm()
    if kind == "min_max_norm":
        return keras.constraints.MinMaxNorm(min_value=0.0, max_value=value)
    raise ValueError(f"unknown constraint {kind!r}")


def conv2d_layer(params: Mapping[str, Any], block: int) -> keras.layers.Conv2D:
    """The Conv2D of block N with every argument of the Keras signature taken from params."""

    def arg(name: str) -> Any:
        return block_arg(params, block, name)

    kernel = int(arg("kernel_size"))
    return keras.layers.Conv2D(
        filters=block_filters(params, block),
        kernel_size=(kernel, kernel),
        strides=(int(arg("strides")),) * 2,
        padding=arg("padding"),
        data_format=arg("data_format"),
        dilation_rate=(int(arg("dilation_rate")),) * 2,
        activation=arg("activation"),
        use_bias=bool(arg("use_bias")),
        kernel_initializer=arg("kernel_initializer"),
        bias_initializer=arg("bias_initializer"),
        kernel_regularizer=regularizer(arg("kernel_regularizer"), arg("kernel_regularizer_strength")),
        bias_regularizer=regularizer(arg("bias_regularizer"), arg("bias_regularizer_strength")),
        activity_regularizer=regularizer(arg("activity_regularizer"), arg("activity_regularizer_strength")),
        kernel_constraint=constraint(arg("kernel_constraint"), arg("kernel_constraint_value")),
        bias_constraint=constraint(arg("bias_constraint"), arg("bias_constraint_value")),
        name=f"conv{block}",
    )


def pooling_layer(params: Mapping[str, Any], block: int) -> keras.layers.Layer | None:
    kind = params["pooling"]
    if kind == "none":
        return None
    layer = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
    size = int(params["pool_size"])
    return layer(pool_size=(size, size), data_format=block_arg(params, block, "data_format"), name=f"pool{block}")


@functools.cache
def can_train(data_format: str) -> bool:
    """Whether this process's device trains convolutions and pooling in `data_format`, asked once
    by training a tiny model on it. TensorFlow's plain CPU kernels (e.g. on AMD EPYC, where its
    oneDNN kernels are off) run NCHW convolutions forward but not their input gradient
    (`Conv2DCustomBackpropInputOp only supports NHWC`), nor NCHW pooling."""
    if data_format == "channels_last":
        return True
    probe = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Permute((3, 1, 2)),
            keras.layers.Conv2D(2, 3, padding="same", data_format=data_format, dtype="float32"),
            keras.layers.MaxPooling2D(2, data_format=data_format, dtype="float32"),
            keras.layers.Conv2D(2, 1, data_format=data_format, dtype="float32"),
            keras.layers.AveragePooling2D(2, data_format=data_format, dtype="float32"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, dtype="float32"),
        ]
    )
    probe.compile(optimizer="sgd", loss="mse")
    try:
        probe.train_on_batch(np.ones((2, 4, 4, 1), np.float32), np.zeros((2, 2), np.float32))
    except Exception:  # each backend refuses in its own words (InvalidArgumentError, UnimplementedError)
        return False
    return True


def layout_for_device(params: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """`params` with every data_format this device cannot train replaced by channels_last, and a
    note saying so (None when nothing changed). data_format is a memory layout, not another
    function: the network computes the same family of functions in either (the dense head sees
    the same features in another order), so the trial runs instead of failing."""
    keys = [k for k in params if k == "data_format" or k.endswith(".data_format")]
    refused = sorted({str(params[k]) for k in keys if not can_train(str(params[k]))})
    if not refused:
        return dict(params), None
    adapted = {**params, **{k: "channels_last" for k in keys if params[k] in refused}}
    return adapted, f"data_format {', '.join(refused)} cannot be trained on this device; ran the same network channels_last"


AUGMENT_KEYS = ("flip", "rotation", "zoom", "translation", "contrast")


def augment_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """`augment.<key>` of params (dotted, or nested under `augment`), only those that are on."""
    nested = params.get("augment") if isinstance(params.get("augment"), Mapping) else {}
    values = {k: params.get(f"augment.{k}", nested.get(k)) for k in AUGMENT_KEYS}
    return {k: v for k, v in values.items() if v not in (None, "none", 0, 0.0)}


def augmentation_layers(params: Mapping[str, Any], seed: int | None = None) -> list[keras.layers.Layer]:
    """Keras preprocessing layers for the augment.* params. They change images only when the model
    is called with training=True (fit), never in evaluate or predict; float32 under any precision policy."""
    on = augment_settings(params)
    layers: list[keras.layers.Layer] = []
    if "flip" in on:
        layers.append(keras.layers.RandomFlip(on["flip"], seed=seed, dtype="float32", name="augment_flip"))
    if "rotation" in on:
        layers.append(keras.layers.RandomRotation(float(on["rotation"]), seed=seed, dtype="float32", name="augment_rotation"))
    if "zoom" in on:
        layers.append(keras.layers.RandomZoom(float(on["zoom"]), seed=seed, dtype="float32", name="augment_zoom"))
    if "translation" in on:
        factor = float(on["translation"])
        layers.append(keras.layers.RandomTranslation(factor, factor, seed=seed, dtype="float32", name="augment_translation"))
    if "contrast" in on:
        layers.append(keras.layers.RandomContrast(float(on["contrast"]), seed=seed, dtype="float32", name="augment_contrast"))
    return layers


def build_conv2d(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """A compiled Sequential CNN. Images arrive channels-last; a block asking for channels_first
    gets its input transposed, so data_format is honoured without touching the data. Where the
    device cannot train a requested layout, the model is built channels_last instead and says so
    in `model.layout_note` (see `layout_for_device`)."""
    params, note = layout_for_device(params)
    keras.mixed_precision.set_global_policy("mixed_float16" if params.get("mixed_precision") else "float32")
    layers: list[keras.layers.Layer] = [keras.Input(shape=input_shape), *augmentation_layers(params)]
    current_format = "channels_last"
    for block in range(1, int(params["blocks"]) + 1):
        wanted = block_arg(params, block, "data_format")
        if wanted != current_format:
            layers.append(keras.layers.Permute((3, 1, 2) if wanted == "channels_first" else (2, 3, 1)))
            current_format = wanted
        layers.append(conv2d_layer(params, block))
        pool = pooling_layer(params, block)
        if pool is not None:
            layers.append(pool)
    layers.append(keras.layers.Flatten(name="flatten"))
    for i in range(1, int(params["dense_layers"]) + 1):
        layers.append(keras.layers.Dense(int(params["dense_units"]), activation="relu", name=f"dense{i}"))
        if params["dropout"] > 0:
            layers.append(keras.layers.Dropout(float(params["dropout"]), name=f"dropout{i}"))
    # float32 head: a float16 softmax loses the small probabilities that the loss needs.
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="head", dtype="float32"))
    model = keras.Sequential(layers, name="conv2d")
    model.layout_note = note  # None: built in the layouts asked for
    optimizer = keras.optimizers.get(
        {"class_name": params["optimizer"], "config": {"learning_rate": float(params["learning_rate"])}}
    )
    # XLA compilation costs more than it saves on the small CPU models of a sweep.
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=bool(params.get("jit_compile", False)),
    )
    return model


def load_model(path: str | Path) -> keras.Model:
    return keras.saving.load_model(path)
