"""The builder honours every Conv2D argument of the Keras signature (read back from layer configs)."""

import numpy as np
import pytest

from tests.models.test_plan import BASE

keras = pytest.importorskip("keras")
from models.conv2d import build_conv2d  # noqa: E402


def conv_config(params, block=1, input_shape=(16, 16, 1)):
    model = build_conv2d({**BASE, **params}, input_shape, 10)
    return model.get_layer(f"conv{block}").get_config(), model


@pytest.mark.parametrize(
    ("params", "field", "expected"),
    [
        ({"filters": 12}, "filters", 12),
        ({"kernel_size": 5}, "kernel_size", (5, 5)),
        ({"strides": 2}, "strides", (2, 2)),
        ({"padding": "valid"}, "padding", "valid"),
        ({"dilation_rate": 2}, "dilation_rate", (2, 2)),
        ({"activation": "elu"}, "activation", "elu"),
        ({"use_bias": False}, "use_bias", False),
    ],
)
def test_plain_arguments(params, field, expected):
    config, _ = conv_config(params)
    assert config[field] == expected


@pytest.mark.parametrize("name", ["he_normal", "he_uniform", "lecun_normal", "glorot_normal", "orthogonal"])
def test_kernel_initializer(name):
    config, _ = conv_config({"kernel_initializer": name})
    assert keras.initializers.get(name).__class__.__name__ == config["kernel_initializer"]["class_name"]


def test_bias_initializer():
    config, _ = conv_config({"bias_initializer": "ones"})
    assert config["bias_initializer"]["class_name"] == "Ones"


@pytest.mark.parametrize(
    ("kind", "class_name", "fields"),
    [("l1", "L1", {"l1": 0.01}), ("l2", "L2", {"l2": 0.01}), ("l1_l2", "L1L2", {"l1": 0.01, "l2": 0.01})],
)
@pytest.mark.parametrize("which", ["kernel", "bias", "activity"])
def test_regularizers(which, kind, class_name, fields):
    config, _ = conv_config({f"{which}_regularizer": kind, f"{which}_regularizer_strength": 0.01})
    reg = config[f"{which}_regularizer"]
    assert reg["class_name"] == class_name
    for key, value in fields.items():
        assert reg["config"][key] == pytest.approx(value)


def test_no_regularizer():
    config, _ = conv_config({"kernel_regularizer": "none"})
    assert config["kernel_regularizer"] is None


@pytest.mark.parametrize(
    ("kind", "class_name", "fields"),
    [
        ("max_norm", "MaxNorm", {"max_value": 2.5}),
        ("non_neg", "NonNeg", {}),
        ("unit_norm", "UnitNorm", {}),
        ("min_max_norm", "MinMaxNorm", {"max_value": 2.5, "min_value": 0.0}),
    ],
)
@pytest.mark.parametrize("which", ["kernel", "bias"])
def test_constraints(which, kind, class_name, fields):
    config, _ = conv_config({f"{which}_constraint": kind, f"{which}_constraint_value": 2.5})
    con = config[f"{which}_constraint"]
    assert con["class_name"] == class_name
    for key, value in fields.items():
        assert con["config"][key] == pytest.approx(value)


def test_filters_grow_per_block_and_blocks_override():
    model = build_conv2d(
        {**BASE, "blocks": 3, "filters": 32, "filters_growth": 2, "pool_size": 2, "block3.kernel_size": 1}, (32, 32, 3), 10
    )
    assert [model.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == [32, 64, 128]
    assert model.get_layer("conv3").kernel_size == (1, 1)
    assert model.get_layer("conv2").kernel_size == (3, 3)


@pytest.mark.parametrize(("pooling", "cls"), [("max", "MaxPooling2D"), ("average", "AveragePooling2D")])
def test_pooling_kinds(pooling, cls):
    _, model = conv_config({"pooling": pooling})
    assert type(model.get_layer("pool1")).__name__ == cls


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adamw"])
def test_optimizer_and_learning_rate(optimizer):
    _, model = conv_config({"optimizer": optimizer, "learning_rate": 0.005})
    assert type(model.optimizer).__name__.lower() == optimizer
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)


def test_dense_head_dropout_and_softmax():
    _, model = conv_config({"dense_layers": 2, "dense_units": 24, "dropout": 0.3})
    assert model.get_layer("dense2").units == 24 and model.get_layer("dropout2").rate == pytest.approx(0.3)
    assert model.get_layer("head").get_config()["activation"] == "softmax"


def test_channels_first_model_trains_on_channels_last_images():
    _, model = conv_config({"data_format": "channels_first"})
    x = np.random.default_rng(0).random((8, 16, 16, 1), dtype=np.float32)
    model.fit(x, np.arange(8) % 10, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (8, 10)


def test_space_names_are_known_to_keras():
    from sweeps.space import ACTIVATIONS, INITIALIZERS, OPTIMIZERS

    for name in ACTIVATIONS:
        keras.activations.get(name)
    for name in INITIALIZERS:
        keras.initializers.get(name)
    for name in OPTIMIZERS:
        keras.optimizers.get({"class_name": name, "config": {"learning_rate": 0.01}})


def test_channels_first_trains_on_every_machine_and_says_how():
    """On a device that cannot train NCHW (TensorFlow's CPU kernels without oneDNN, e.g. AMD EPYC)
    the same network runs channels_last and the model records it; elsewhere it stays channels_first."""
    from models.conv2d import can_train

    _, model = conv_config({"data_format": "channels_first"})
    x = np.random.default_rng(0).random((8, 16, 16, 1), dtype=np.float32)
    model.fit(x, np.arange(8) % 10, epochs=1, verbose=0)
    used = model.get_layer("conv1").get_config()["data_format"]
    if can_train("channels_first"):
        assert used == "channels_first" and model.layout_note is None
    else:
        assert used == "channels_last" and "channels_first cannot be trained on this device" in model.layout_note


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_channels_first_trains_with_and_without_onednn_kernels(onednn):
    """Both kinds of CPU kernels, each in a fresh interpreter (the choice is made at TensorFlow's import)."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np; from models.conv2d import build_conv2d, can_train; from tests.models.test_plan import BASE\n"
        "m = build_conv2d({**BASE, 'data_format': 'channels_first', 'blocks': 2}, (16, 16, 1), 10)\n"
        "m.fit(np.random.default_rng(0).random((8, 16, 16, 1), dtype=np.float32), np.arange(8) % 10, epochs=1, verbose=0)\n"
        "print('USED', m.get_layer('conv1').get_config()['data_format'], can_train('channels_first'), m.layout_note)\n"
    )
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(line for line in out.stdout.splitlines() if line.startswith("USED"))
    assert line.startswith("USED channels_first True None") or line.startswith(
        "USED channels_last False data_format channels_first cannot be trained"
    )
