"""Shapes, parameter counts and infeasibility from the params alone, checked against Keras."""

import pytest

from models.plan import InfeasibleModel, plan_conv2d

BASE = {
    "blocks": 2,
    "filters": 8,
    "filters_growth": 2,
    "kernel_size": 3,
    "strides": 1,
    "padding": "same",
    "data_format": "channels_last",
    "dilation_rate": 1,
    "activation": "relu",
    "use_bias": True,
    "kernel_initializer": "glorot_uniform",
    "bias_initializer": "zeros",
    "kernel_regularizer": "none",
    "kernel_regularizer_strength": 1e-4,
    "bias_regularizer": "none",
    "bias_regularizer_strength": 1e-4,
    "activity_regularizer": "none",
    "activity_regularizer_strength": 1e-5,
    "kernel_constraint": "none",
    "kernel_constraint_value": 3.0,
    "bias_constraint": "none",
    "bias_constraint_value": 3.0,
    "pooling": "max",
    "pool_size": 2,
    "dense_layers": 1,
    "dense_units": 16,
    "dropout": 0.1,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 32,
}


@pytest.mark.parametrize(
    ("changes", "shapes"),
    [
        ({}, [(16, 16, 8), (8, 8, 16)]),
        ({"padding": "valid"}, [(14, 14, 8), (5, 5, 16)]),
        ({"pooling": "none", "strides": 2}, [(8, 8, 8), (4, 4, 16)]),
        ({"pooling": "none", "dilation_rate": 2, "padding": "valid", "blocks": 1}, [(12, 12, 8)]),
        ({"filters_growth": 1, "block2.filters": 5}, [(16, 16, 8), (8, 8, 5)]),
        ({"block2.kernel_size": 1, "block2.padding": "valid"}, [(16, 16, 8), (8, 8, 16)]),
    ],
)
def test_block_output_shapes(changes, shapes):
    from models.conv2d import build_conv2d

    params = {**BASE, **changes}
    plan = plan_conv2d(params, (16, 16, 1), 10)
    assert [b.conv_output for b in plan.blocks] == shapes
    model = build_conv2d(params, (16, 16, 1), 10)
    keras_shapes = [tuple(layer.output.shape[1:]) for layer in model.layers if layer.name.startswith("conv")]
    assert keras_shapes == shapes


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"strides": 2, "dilation_rate": 2}, "strides=2 with dilation_rate=2"),
        ({"padding": "valid", "kernel_size": 5, "dilation_rate": 2}, "smaller than the effective kernel 9x9"),
        ({"blocks": 4}, "pooling 2x2 on a 1x1 feature map"),
        ({"padding": "valid", "blocks": 2, "kernel_size": 5}, "smaller than the effective kernel 5x5"),
    ],
)
def test_infeasible_models_say_why(changes, reason):
    with pytest.raises(InfeasibleModel, match=reason):
        plan_conv2d({**BASE, **changes}, (8, 8, 1), 10)


def test_budgets_reject_before_training():
    with pytest.raises(InfeasibleModel, match="max_params"):
        plan_conv2d(BASE, (8, 8, 1), 10, max_params=100)
    with pytest.raises(InfeasibleModel, match="max_flops"):
        plan_conv2d(BASE, (8, 8, 1), 10, max_flops=100)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"padding": "valid", "blocks": 1},
        {"use_bias": False, "dense_layers": 2},
        {"strides": 2, "pooling": "none", "filters_growth": 1.5},
    ],
)
def test_parameter_count_matches_keras(changes):
    from models.conv2d import build_conv2d

    params = {**BASE, **changes}
    assert plan_conv2d(params, (16, 16, 3), 7).params == build_conv2d(params, (16, 16, 3), 7).count_params()
