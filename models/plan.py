"""The shape of a Conv2D network computed from its params alone, before Keras builds anything.

Lets a sweep reject an infeasible trial (a kernel larger than its input, strides with dilation,
pooling down to nothing, a model over budget) in microseconds instead of a Keras traceback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sweeps.core.errors import SweepsError


class InfeasibleModel(SweepsError, ValueError):
    """The params describe a network Keras cannot build (or one over budget); says why."""


@dataclass(frozen=True)
class BlockPlan:
    filters: int
    kernel_size: int
    strides: int
    dilation_rate: int
    padding: str
    conv_output: tuple[int, int, int]  # height, width, channels after the convolution
    output: tuple[int, int, int]  # after pooling


@dataclass(frozen=True)
class ModelPlan:
    blocks: tuple[BlockPlan, ...]
    params: int
    flops: int  # multiply-adds x 2 per image, convolutions and dense layers


def block_arg(params: Mapping[str, Any], block: int, arg: str) -> Any:
    """A Conv2D argument of block N (1-based): `blockN.<arg>` when set, else the shared value."""
    return params.get(f"block{block}.{arg}", params[arg])


def block_filters(params: Mapping[str, Any], block: int) -> int:
    explicit = params.get(f"block{block}.filters")
    if explicit is not None:
        return int(explicit)
    return max(1, int(round(params["filters"] * params["filters_growth"] ** (block - 1))))


def _conv_length(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    effective = (kernel - 1) * dilation + 1
    return (size - effective) // stride + 1


def plan_conv2d(
    params: Mapping[str, Any],
    input_shape: tuple[int, int, int],
    num_classes: int,
    max_params: int | None = None,
    max_flops: int | None = None,
) -> ModelPlan:
    """Output shape of every block, parameter count and FLOPs per image; InfeasibleModel if impossible."""
    height, width, channels = input_shape
    blocks: list[BlockPlan] = []
    total_params = 0
    flops = 0
    for i in range(1, int(params["blocks"]) + 1):
        kernel, stride, dilation = (int(block_arg(params, i, a)) for a in ("kernel_size", "strides", "dilation_rate"))
        padding = block_arg(params, i, "padding")
        if stride > 1 and dilation > 1:
            raise InfeasibleModel(
                f"block {i}: strides={stride} with dilation_rate={dilation}; Keras allows only one of them above 1"
            )
        effective = (kernel - 1) * dilation + 1
        if padding == "valid" and min(height, width) < effective:
            raise InfeasibleModel(
                f"block {i}: input {height}x{width} is smaller than the effective kernel {effective}x{effective} "
                f"(kernel_size={kernel}, dilation_rate={dilation}) with padding='valid'"
            )
        filters = block_filters(params, i)
        out_h, out_w = (_conv_length(s, kernel, stride, dilation, padding) for s in (height, width))
        weights = kernel * kernel * channels * filters
        total_params += weights + (filters if block_arg(params, i, "use_bias") else 0)
        flops += 2 * weights * out_h * out_w
        conv_output = (out_h, out_w, filters)
        if params["pooling"] != "none":
            pool = int(params["pool_size"])
            if min(out_h, out_w) < pool:
                raise InfeasibleModel(f"block {i}: pooling {pool}x{pool} on a {out_h}x{out_w} feature map leaves nothing")
            out_h, out_w = out_h // pool, out_w // pool
        blocks.append(BlockPlan(filters, kernel, stride, dilation, padding, conv_output, (out_h, out_w, filters)))
        height, width, channels = out_h, out_w, filters
    features = height * width * channels
    for _ in range(int(params["dense_layers"])):
        units = int(params["dense_units"])
        total_params += features * units + units
        flops += 2 * features * units
        features = units
    total_params += features * num_classes + num_classes
    flops += 2 * features * num_classes
    if max_params is not None and total_params > max_params:
        raise InfeasibleModel(f"{total_params:,} parameters exceed max_params={max_params:,}")
    if max_flops is not None and flops > max_flops:
        raise InfeasibleModel(f"{flops:,} FLOPs per image exceed max_flops={max_flops:,}")
    return ModelPlan(tuple(blocks), total_params, flops)
