"""space=auto: the space derived from the data (sweeps/autospace.py), its table, where it is the
default, how --cfg explains it, that a resume keeps it, and the one error for an input it cannot fit."""

import numpy as np
import pytest
import yaml
from optuna.distributions import CategoricalDistribution

from models.plan import InfeasibleModel, plan_conv2d
from sweeps.autospace import ARTICLE_CNN, derive_space
from sweeps.config.validation import load_config
from sweeps.core.errors import InputError
from sweeps.space import flatten, parse_space, resolve_params
from tests.conftest import main_in_process
from tests.image_folders import photo_folder


def _model():
    from sweeps.config.compose import CONF_DIR

    return yaml.safe_load((CONF_DIR / "model" / "conv2d.yaml").read_text())


# (height, width, channels, classes, training images) -> blocks, kernel sizes, first filters,
# dense units, batch sizes, max_params, whether the article's CNN is a point of the space
TABLE = [
    ((8, 8, 1, 10, 1_437), (1, 1), (3, 5), (16, 32, 64), (32, 1024), (32, 64, 128), 660_000, False),
    ((28, 28, 1, 10, 3_200), (1, 3), (3, 5), (16, 32, 64), (32, 1024), (32, 64, 128), 1_400_000, True),
    ((32, 32, 3, 10, 45_000), (1, 3), (3, 5), (16, 32, 64), (32, 1024), (32, 64, 128, 256), 4_500_000, True),
    ((64, 64, 3, 10, 4_000), (2, 4), (3, 5, 7), (16, 32, 64), (32, 1024), (32, 64, 128), 14_000_000, True),
    ((224, 224, 3, 100, 10_000), (4, 6), (3, 5, 7), (16, 32), (128, 1024), (32, 64, 128), 34_000_000, False),
]


def _values(space, key):
    dist = space.searched.get(key)
    if dist is None:
        return (space.fixed[key],)
    if isinstance(dist, CategoricalDistribution):
        return tuple(dist.choices)
    return (dist.low, dist.high)


def _ends(space, key):
    values = _values(space, key)
    return (values[0], values[-1])


def _contains(space, key, value):
    dist = space.searched.get(key)
    if dist is None:
        return space.fixed.get(key, value) == value
    return bool(dist._contains(dist.to_internal_repr(value)))


@pytest.mark.parametrize("row", TABLE, ids=["x".join(map(str, r[0][:3])) for r in TABLE])
def test_the_derived_space_table(row):
    (h, w, c, classes, images), blocks, kernels, filters, dense, batches, budget, article_inside = row
    derived = derive_space(h, w, c, classes, images)
    assert set(derived.reasons) == set(derived.spec) and all(derived.reasons.values())
    space = parse_space(derived.spec, _model())  # the same grammar as every YAML space
    assert _ends(space, "blocks") == blocks
    assert _values(space, "kernel_size") == kernels
    assert _values(space, "filters") == filters and space.fixed["filters_growth"] == 2
    assert _values(space, "dense_units") == dense and space.searched["dense_units"].log
    assert _values(space, "batch_size") == batches
    assert _values(space, "dropout") == (0.0, 0.5) and space.searched["learning_rate"].log
    assert space.max_params == budget

    model = _model()
    # The deepest net keeps a 3x3 map (same padding, 2x2 pooling per block); one block more would not.
    deepest = {**resolve_params(model, space, {}), "blocks": blocks[1], "padding": "same", "filters": filters[0]}
    assert min(plan_conv2d(deepest, (h, w, c), classes).blocks[-1].output[:2]) >= 3
    try:
        side = min(plan_conv2d({**deepest, "blocks": blocks[1] + 1}, (h, w, c), classes).blocks[-1].output[:2])
    except InfeasibleModel:
        side = 0
    assert side < 3

    # The article's CNN (the baseline a sweep must beat): a point of the space, within its budget.
    inside = all(_contains(space, k, v) for k, v in ARTICLE_CNN.items() if k in derived.spec)
    if inside:
        plan_conv2d(resolve_params(model, space, ARTICLE_CNN), (h, w, c), classes, space.max_params)
    assert inside == article_inside


def test_the_article_network_has_its_published_size_through_the_planner():
    plan = plan_conv2d({**flatten(_model()), **ARTICLE_CNN}, (28, 28, 1), 10)
    assert plan.params == 1_087_106  # "1.1 M parameters on 28x28x1"
    assert [b.output for b in plan.blocks] == [(12, 12, 32), (4, 4, 64)]


def test_the_model_config_expresses_the_article_network_layer_for_layer():
    """conf/model/conv2d.yaml with the article's values builds its network: Conv2D(32,5x5,relu) ->
    MaxPool 2 -> Conv2D(64,5x5,relu) -> MaxPool 2 -> Flatten -> Dense(1000,relu) -> Dense(10,softmax)."""
    from models.conv2d import build_conv2d

    model = build_conv2d({**flatten(_model()), **ARTICLE_CNN}, (28, 28, 1), 10)
    layers = [(type(layer).__name__, layer.output.shape[1:]) for layer in model.layers]
    assert layers == [
        ("Conv2D", (24, 24, 32)),
        ("MaxPooling2D", (12, 12, 32)),
        ("Conv2D", (8, 8, 64)),
        ("MaxPooling2D", (4, 4, 64)),
        ("Flatten", (1024,)),
        ("Dense", (1000,)),
        ("Dense", (10,)),
    ]
    conv, dense = model.layers[0], model.layers[5]
    assert conv.kernel_regularizer is None and conv.strides == (1, 1) and conv.padding == "valid"
    assert dense.activation.__name__ == "relu" and model.layers[-1].activation.__name__ == "softmax"
    assert model.count_params() == 1_087_106 and model.optimizer.learning_rate.numpy() == pytest.approx(1e-3)


def test_auto_is_the_default_but_for_the_digits_and_an_explicit_space_wins(tmp_path):
    assert "auto" not in load_config([]).resolved["space"]  # digits keep small
    assert load_config([]).space.fixed == {} and "kernel_size" in load_config([]).space.searched
    mnist = load_config(["dataset=mnist"])  # known size: nothing downloaded to derive the space
    assert "auto" not in mnist.resolved["space"] and mnist.resolved["space"]["blocks"] == "int(interval(1, 3))"
    assert mnist.space.max_params == 5_400_000 and "derived from 28x28x1 images, 10 classes, 54,000" in mnist.space_note
    assert load_config(["dataset=mnist", "space=conv2d"]).space.max_params == 500_000
    assert load_config(["space=auto"]).resolved["space"]["blocks"] == 1  # digits, when asked for
    given = load_config(["dataset=cifar10", "space.kernel_size=choice(3)", "+space.max_params=2000000"])
    assert given.space.fixed.get("kernel_size") == 3 or list(given.space.searched["kernel_size"].choices) == [3]
    assert given.space.max_params == 2_000_000 and "given as space.max_params, over the derived 4500000" in given.space_note


def test_cfg_prints_the_derived_space_with_why_each_range(tmp_path, capsys):
    root = photo_folder(tmp_path / "photos", per_class=5)
    args = ["run", "--cfg", "dataset=folder", f"dataset.path={root}", "dataset.image_size=[28,28]"]
    code, out, err = main_in_process(capsys, *args, "dataset.color_mode=grayscale", f"output_dir={tmp_path / 'o'}")
    assert code == 0, err
    assert "# space=auto, derived from 28x28x1 images, 2 classes, 8 training images" in out
    note = out.split("# space=auto", 1)[1]
    for line in ("blocks: int(interval(1, 3))  -- 28px", "kernel_size: choice(3, 5)  -- 3x3", "max_params: 1400000  -- 1.25x"):
        assert f"#   {line}" in note, note
    printed = yaml.safe_load(out.split("# space=auto", 1)[0])
    assert printed["space"]["kernel_size"] == "choice(3, 5)" and "auto" not in printed["space"]
    assert not (tmp_path / "o").exists()


def test_a_resume_reads_the_space_the_sweep_started_with(tmp_path):
    """The derived space is what the sweep saves; a resume parses it, and derives nothing again
    (here: the folder it was derived from is gone, and the resume still has the same space)."""
    import shutil

    from sweeps.config.saved import load_saved_config
    from sweeps.core.redaction import redact
    from sweeps.driver.state import fingerprint

    root = photo_folder(tmp_path / "photos", per_class=5)
    cfg = load_config(["name=auto-resume", "dataset=folder", f"dataset.path={root}", f"output_dir={tmp_path / 'o'}"])
    saved = cfg.sweep_dir / "config.yaml"  # as the sweep writes it (sweeps.driver.sweep._sweep)
    saved.parent.mkdir(parents=True)
    saved.write_text(yaml.safe_dump(redact(cfg.resolved), sort_keys=False))
    assert yaml.safe_load(saved.read_text())["space"]["max_params"] == cfg.space.max_params == 14_000_000
    shutil.rmtree(root)
    again = load_saved_config("auto-resume", cfg.output_dir, [])
    assert again.space == cfg.space and fingerprint(again) == fingerprint(cfg)


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        (["dataset.image_size=[4,4]"], "dataset.image_size", "4x4 images are too small for space=auto"),
        (["space.auto=maybe"], "space.auto", "is not true or false"),
    ],
)
def test_a_shape_it_cannot_fit_is_one_clear_error(tmp_path, capsys, extra, field, words):
    root = photo_folder(tmp_path / "photos", per_class=3)
    args = ["run", "dataset=folder", f"dataset.path={root}", *extra, f"output_dir={tmp_path / 'o'}"]
    code, out, err = main_in_process(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {field}: ") and words in err and "Fix:" in err, err
    assert not (tmp_path / "o").exists()


def test_npz_images_too_small_or_of_no_image_shape_name_the_file(tmp_path, capsys):
    small = tmp_path / "small.npz"
    np.savez(small, x_train=np.zeros((6, 4, 4), np.uint8), y_train=np.arange(6) % 2)
    with pytest.raises(InputError) as info:
        load_config(["dataset=npz", f"dataset.path={small}"])
    assert info.value.field == "dataset.path" and "4x4 images are too small" in info.value.problem
    assert "space=small" in info.value.fix
    flat = tmp_path / "flat.npz"
    np.savez(flat, x_train=np.zeros((6, 16), np.uint8), y_train=np.arange(6) % 2)
    with pytest.raises(InputError) as info:
        load_config(["dataset=npz", f"dataset.path={flat}"])
    assert info.value.field == "dataset x_train" and "images have shape (6, 16)" in info.value.problem
    # a readable npz: the space from its header (28x28 grey, 3 classes), the images never loaded
    good = tmp_path / "good.npz"
    np.savez_compressed(good, x_train=np.zeros((50, 28, 28), np.uint8), y_train=np.arange(50) % 3)
    cfg = load_config(["dataset=npz", f"dataset.path={good}"])
    assert "derived from 28x28x1 images, 3 classes, 40 training images" in cfg.space_note
