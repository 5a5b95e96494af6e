"""Hydra sweep grammar -> Optuna distributions, validation and conditions, as tables."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweeps.space import SpaceError, define_by_run, grid_points, grid_size, is_active, parse_space, parse_value, resolve_params

MODEL = {
    "blocks": 2,
    "filters": 32,
    "filters_growth": 2,
    "kernel_size": 3,
    "padding": "same",
    "kernel_regularizer": "l2",
    "kernel_regularizer_strength": 1e-4,
    "kernel_constraint": "none",
    "kernel_constraint_value": 3.0,
    "learning_rate": 1e-3,
}


@pytest.mark.parametrize(
    ("grammar", "expected"),
    [
        ("choice(16, 32, 64)", CategoricalDistribution([16, 32, 64])),
        ("choice(valid, same)", CategoricalDistribution(["valid", "same"])),
        ("choice(true, false)", CategoricalDistribution([True, False])),
        ("interval(0.0, 0.5)", FloatDistribution(0.0, 0.5)),
        ("interval(1, 4)", FloatDistribution(1.0, 4.0)),  # Hydra's interval is float unless cast
        ("int(interval(1, 4))", IntDistribution(1, 4)),
        ("tag(log, interval(1e-5, 1e-2))", FloatDistribution(1e-5, 1e-2, log=True)),
        ("tag(log, int(interval(8, 256)))", IntDistribution(8, 256, log=True)),
        ("range(1, 5)", IntDistribution(1, 4)),  # stop is excluded, as in Python
        ("range(16, 129, 16)", IntDistribution(16, 128, step=16)),
        ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
    ],
)
def test_grammar_becomes_distribution(grammar, expected):
    assert parse_value("x", grammar) == expected


@pytest.mark.parametrize(("text", "constant"), [("same", "same"), (3, 3), ("3", 3), (True, True), (1e-4, 1e-4)])
def test_constants_pass_through(text, constant):
    assert parse_value("x", text) == constant


@pytest.mark.parametrize(
    ("spec", "key", "words"),
    [
        ({"filterz": "choice(1, 2)"}, "filterz", "unknown parameter"),
        ({"kernel_size": "int(interval(5, 1))"}, "kernel_size", "is empty"),
        ({"learning_rate": "tag(log, interval(0, 1))"}, "learning_rate", "no logarithm"),
        ({"activation": "choice(relu, relux)"}, "activation", "'relux' is not one of"),
        ({"kernel_initializer": "choice(he_normal, he_magic)"}, "kernel_initializer", "'he_magic'"),
        ({"kernel_regularizer": "choice(l2, l3)"}, "kernel_regularizer", "'l3'"),
        ({"padding": "causal"}, "padding", "'causal'"),
        ({"filters": "choice()"}, "filters", "cannot parse"),
        ({"filters": "choice(16, 32"}, "filters", "cannot parse"),
        ({"filters": "interval(8, 64)"}, "filters", "float interval for a whole-number"),
        ({"filters": "choice(16, 16)"}, "filters", "repeats"),
        ({"dropout": "interval(0.2, 1.5)"}, "dropout", "above"),
        ({"padding": "interval(0, 1)"}, "padding", "numeric range for a named setting"),
        ({"block2.kernal_size": 3}, "block2.kernal_size", "unknown parameter"),
        ({"kernel_size": "range(5, 1)"}, "kernel_size", "holds no value"),
    ],
)
def test_bad_spaces_name_the_key(spec, key, words):
    with pytest.raises(SpaceError) as info:
        parse_space(spec, MODEL)
    assert info.value.key == key
    assert words in str(info.value)
    assert "Fix:" in str(info.value)


def test_bad_model_value_is_named_with_its_section():
    with pytest.raises(SpaceError) as info:
        parse_space({}, {**MODEL, "kernel_size": 0})
    assert info.value.key == "model.kernel_size"


def test_parents_are_suggested_before_the_parameters_they_enable():
    space = parse_space(
        {
            "kernel_regularizer_strength": "tag(log, interval(1e-5, 1e-2))",
            "block3.filters": "choice(8, 16)",
            "kernel_regularizer": "choice(none, l2)",
            "blocks": "int(interval(1, 3))",
        },
        MODEL,
    )
    order = list(space.searched)
    assert order.index("kernel_regularizer") < order.index("kernel_regularizer_strength")
    assert order.index("blocks") < order.index("block3.filters")


@pytest.mark.parametrize(
    ("key", "values", "active"),
    [
        ("kernel_regularizer_strength", {"kernel_regularizer": "none"}, False),
        ("kernel_regularizer_strength", {"kernel_regularizer": "l1_l2"}, True),
        ("kernel_constraint_value", {"kernel_constraint": "unit_norm"}, False),
        ("kernel_constraint_value", {"kernel_constraint": "max_norm"}, True),
        ("block3.filters", {"blocks": 2}, False),
        ("block2.filters", {"blocks": 2}, True),
        ("block3.kernel_regularizer_strength", {"blocks": 3, "block3.kernel_regularizer": "l2"}, True),
        ("block3.kernel_regularizer_strength", {"blocks": 2, "block3.kernel_regularizer": "l2"}, False),
        ("learning_rate", {}, True),
    ],
)
def test_conditions(key, values, active):
    assert is_active(key, values) is active


def test_define_by_run_only_suggests_active_parameters():
    space = parse_space(
        {
            "kernel_regularizer": "choice(none, l2)",
            "kernel_regularizer_strength": "tag(log, interval(1e-5, 1e-2))",
            "blocks": "choice(1, 3)",
            "block3.kernel_size": "choice(1, 3)",
            "learning_rate": "tag(log, interval(1e-4, 1e-2))",
        },
        MODEL,
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: define_by_run(space, MODEL)(t) or 0.0, n_trials=40)
    seen = [t.params for t in study.trials]
    assert any("kernel_regularizer_strength" in p for p in seen)
    for params in seen:
        assert ("kernel_regularizer_strength" in params) == (params["kernel_regularizer"] == "l2")
        assert ("block3.kernel_size" in params) == (params["blocks"] == 3)


def test_resolve_params_layers_defaults_constants_and_samples():
    space = parse_space({"padding": "valid", "filters": "choice(8, 16)"}, MODEL)
    params = resolve_params(MODEL, space, {"filters": 8})
    assert params["padding"] == "valid" and params["filters"] == 8 and params["kernel_size"] == 3


def test_a_grid_holds_each_distinct_active_point_once():
    """A strength exists only with its regularizer, block 2's filters only with 2 blocks: the grid is
    the 1 + 2 regularizer points times the 1 + 2 block points, not the product of every value (16)."""
    model = {"blocks": 1, "kernel_regularizer": "none"}
    space = parse_space(
        {
            "kernel_regularizer": "choice(none, l2)",
            "kernel_regularizer_strength": "choice(1e-4, 1e-3)",
            "blocks": "choice(1, 2)",
            "block2.filters": "choice(8, 16)",
        },
        model,
    )
    points = grid_points(space, model)
    assert grid_size(points) == len(points) == 3 * 3
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)  # each once
    for point in points:
        values = {**model, **point}
        assert set(point) == {k for k in space.searched if is_active(k, values)}, point
    assert {"kernel_regularizer": "none", "blocks": 1} in points
