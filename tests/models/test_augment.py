"""Augmentation layers: searchable in any space, active only in training, validated like any param."""

import numpy as np
import pytest

from sweeps.config.validation import load_config
from sweeps.core.errors import ConfigError
from tests.models.test_plan import BASE

keras = pytest.importorskip("keras")
from models.conv2d import augment_settings, build_conv2d  # noqa: E402
from models.plan import plan_conv2d  # noqa: E402

ALL_ON = {
    "augment.flip": "horizontal_and_vertical",
    "augment.rotation": 0.2,
    "augment.zoom": 0.2,
    "augment.translation": 0.2,
    "augment.contrast": 0.5,
}
LAYERS = {
    "augment.flip": "RandomFlip",
    "augment.rotation": "RandomRotation",
    "augment.zoom": "RandomZoom",
    "augment.translation": "RandomTranslation",
    "augment.contrast": "RandomContrast",
}


@pytest.mark.parametrize("key", sorted(LAYERS))
def test_each_augmentation_adds_its_layer_and_nothing_when_off(key):
    model = build_conv2d({**BASE, key: ALL_ON[key]}, (16, 16, 3), 3)
    assert [type(layer).__name__ for layer in model.layers if layer.name.startswith("augment_")] == [LAYERS[key]]
    off = build_conv2d({**BASE, "augment.flip": "none", "augment.zoom": 0.0}, (16, 16, 3), 3)
    assert not [layer for layer in off.layers if layer.name.startswith("augment_")]


def test_augmentation_changes_images_in_training_only_and_adds_no_weights():
    params = {**BASE, **ALL_ON}
    model = build_conv2d(params, (16, 16, 3), 3)
    plain = build_conv2d(BASE, (16, 16, 3), 3)
    assert model.count_params() == plain.count_params() == plan_conv2d(params, (16, 16, 3), 3).params
    images = np.random.default_rng(0).random((8, 16, 16, 3)).astype(np.float32)
    augment = keras.Sequential([layer for layer in model.layers if layer.name.startswith("augment_")])
    assert np.array_equal(np.asarray(augment(images, training=False)), images)
    assert not np.allclose(np.asarray(augment(images, training=True)), images)
    plain.set_weights(model.get_weights())
    assert np.allclose(model.predict(images, verbose=0), plain.predict(images, verbose=0), atol=1e-6)
    # and it trains
    history = model.fit(images, np.arange(8) % 3, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_nested_or_dotted_settings_are_read_alike():
    assert augment_settings({"augment": {"flip": "vertical", "zoom": 0.0}}) == {"flip": "vertical"}
    assert augment_settings({"augment.flip": "none", "augment.contrast": 0.3}) == {"contrast": 0.3}


@pytest.mark.parametrize(
    "override,field",
    [
        ("space.augment.flip=diagonal", "space.augment.flip"),
        ("space.augment.zoom=1.0", "space.augment.zoom"),
        ("space.augment.rotation=-0.1", "space.augment.rotation"),
        ("model.augment.contrast=2", "model.augment.contrast"),
    ],
)
def test_bad_augmentation_values_name_the_field(override, field):
    with pytest.raises(ConfigError) as info:
        load_config([override])
    assert info.value.key == field


def test_shipped_augmented_space_searches_augmentation_with_conv_arguments():
    cfg = load_config(["space=augmented"])
    searched = set(cfg.space.searched)
    assert {f"augment.{k}" for k in ("flip", "rotation", "zoom", "translation", "contrast")} <= searched
    assert {"filters", "kernel_size", "blocks"} <= searched
    # usable in any space: one augmentation key added to the default space
    assert "augment.flip" in load_config(["space.augment.flip=choice(none,horizontal)"]).space.searched
