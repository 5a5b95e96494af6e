"""Search spaces: Hydra sweep grammar in YAML -> Optuna distributions -> a define-by-run function.

Pure: imports optuna and hydra's grammar parser only, so a space is validated (and logged)
before any Ray worker or TensorFlow process exists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweeps.core.errors import SweepsError
from sweeps.core.records import BASELINE_ATTR, OUTSIDE_ATTR


class SpaceError(SweepsError, ValueError):
    """A search space or model setting that cannot be searched; names the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"{key}: {problem}. Fix: {fix}")


# The Conv2D arguments that may also be set per block as "blockN.<arg>".
CONV_ARGS = (
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "dilation_rate",
    "activation",
    "use_bias",
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "kernel_regularizer_strength",
    "bias_regularizer",
    "bias_regularizer_strength",
    "activity_regularizer",
    "activity_regularizer_strength",
    "kernel_constraint",
    "kernel_constraint_value",
    "bias_constraint",
    "bias_constraint_value",
)

# Names Keras accepts (keras.activations / keras.initializers); a test checks them against Keras.
ACTIVATIONS = (
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "swish",
    "mish",
    "tanh",
    "sigmoid",
    "hard_sigmoid",
    "softplus",
    "softsign",
    "exponential",
    "linear",
)
INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "zeros",
    "ones",
)
REGULARIZERS = ("none", "l1", "l2", "l1_l2")
CONSTRAINTS = ("none", "max_norm", "non_neg", "unit_norm", "min_max_norm")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam", "adamax", "adagrad")


@dataclass(frozen=True)
class Rule:
    """What values one parameter may take: a set of names, or a numeric range."""

    names: tuple[Any, ...] = ()
    kind: type | None = None  # int or float for numeric parameters
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: value must be > low
    high_open: bool = False  # True: value must be < high

    def problem(self, value: Any) -> str | None:
        if self.names:
            if value not in self.names or isinstance(value, bool) != isinstance(self.names[0], bool):
                return f"{value!r} is not one of {', '.join(map(str, self.names))}"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if self.kind is int and not float(value).is_integer():
            return f"{value!r} is not a whole number"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"{value!r} is below the {'exclusive ' if self.low_open else ''}minimum {self.low}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"{value!r} is above the {'exclusive ' if self.high_open else ''}maximum {self.high}"
        return None


_POSITIVE_INT = Rule(kind=int, low=1)
_STRENGTH = Rule(kind=float, low=0.0, low_open=True)
RULES: dict[str, Rule] = {
    "blocks": _POSITIVE_INT,
    "filters": _POSITIVE_INT,
    "filters_growth": Rule(kind=float, low=0.0, low_open=True),
    "kernel_size": _POSITIVE_INT,
    "strides": _POSITIVE_INT,
    "padding": Rule(names=("valid", "same")),
    "data_format": Rule(names=("channels_last", "channels_first")),
    "dilation_rate": _POSITIVE_INT,
    "activation": Rule(names=ACTIVATIONS),
    "use_bias": Rule(names=(True, False)),
    "kernel_initializer": Rule(names=INITIALIZERS),
    "bias_initializer": Rule(names=INITIALIZERS),
    "kernel_regularizer": Rule(names=REGULARIZERS),
    "kernel_regularizer_strength": _STRENGTH,
    "bias_regularizer": Rule(names=REGULARIZERS),
    "bias_regularizer_strength": _STRENGTH,
    "activity_regularizer": Rule(names=REGULARIZERS),
    "activity_regularizer_strength": _STRENGTH,
    "kernel_constraint": Rule(names=CONSTRAINTS),
    "kernel_constraint_value": _STRENGTH,
    "bias_constraint": Rule(names=CONSTRAINTS),
    "bias_constraint_value": _STRENGTH,
    "pooling": Rule(names=("max", "average", "none")),
    "pool_size": _POSITIVE_INT,
    "dense_layers": Rule(kind=int, low=0),
    "dense_units": _POSITIVE_INT,
    "dropout": Rule(kind=float, low=0.0, high=1.0, high_open=True),
    "optimizer": Rule(names=OPTIMIZERS),
    "learning_rate": Rule(kind=float, low=0.0, low_open=True),
    "batch_size": _POSITIVE_INT,
    "mixed_precision": Rule(names=(True, False)),
    # Augmentation (Keras preprocessing layers, active only in training); 0 / none: off.
    "augment.flip": Rule(names=("none", "horizontal", "vertical", "horizontal_and_vertical")),
    "augment.rotation": Rule(kind=float, low=0.0, high=1.0),  # fraction of a full turn, either way
    "augment.zoom": Rule(kind=float, low=0.0, high=1.0, high_open=True),  # fraction of the size, in or out
    "augment.translation": Rule(kind=float, low=0.0, high=1.0),  # fraction of the height and width
    "augment.contrast": Rule(kind=float, low=0.0, high=1.0),
    "jit_compile": Rule(names=(True, False)),
}

_BLOCK_KEY = re.compile(r"^block(\d+)\.(\w+)$")


def rule_for(key: str) -> Rule:
    """The rule of a model parameter or of a per-block Conv2D argument `blockN.<arg>`."""
    match = _BLOCK_KEY.match(key)
    if match and int(match[1]) >= 1 and match[2] in CONV_ARGS:
        return RULES[match[2]]
    if key in RULES:
        return RULES[key]
    raise SpaceError(
        key,
        "unknown parameter",
        f"use one of {', '.join(RULES)}, or blockN.<Conv2D argument> (e.g. block2.kernel_size)",
    )


def _check_value(key: str, value: Any) -> None:
    problem = rule_for(key).problem(value)
    if problem:
        raise SpaceError(key, problem, _fix_for(key))


def _fix_for(key: str) -> str:
    rule = rule_for(key)
    if rule.names:
        return f"pick from {', '.join(map(str, rule.names))}"
    bounds = []
    if rule.low is not None:
        bounds.append(f"{'>' if rule.low_open else '>='} {rule.low:g}")
    if rule.high is not None:
        bounds.append(f"{'<' if rule.high_open else '<='} {rule.high:g}")
    kind = "a whole number" if rule.kind is int else "a number"
    return f"use {kind}" + (f" {' and '.join(bounds)}" if bounds else "")


# ---------------------------------------------------------------- grammar -> distribution

_PARSER = OverridesParser.create()


def parse_value(key: str, text: Any) -> BaseDistribution | Any:
    """One space entry: Hydra sweep grammar -> an Optuna distribution; anything else -> a constant."""
    if not isinstance(text, str):
        return text
    try:
        override = _PARSER.parse_override(f"{key}={text}")
        value = override.value()
    except HydraException as exc:
        raise SpaceError(
            key,
            f"cannot parse {text!r} ({exc})",
            "write choice(a,b), interval(lo,hi), int(interval(lo,hi)), range(start,stop[,step]) or tag(log, interval(lo,hi))",
        ) from None
    if isinstance(value, ChoiceSweep):
        return _choice(key, value)
    if isinstance(value, IntervalSweep):
        return _interval(key, value)
    if isinstance(value, RangeSweep):
        return _range(key, value)
    return value


def _choice(key: str, sweep: ChoiceSweep) -> CategoricalDistribution:
    options = list(sweep.list)
    if len(set(map(repr, options))) != len(options):
        raise SpaceError(key, f"choice{tuple(options)} repeats an option", "list each option once")
    return CategoricalDistribution(options)


def _interval(key: str, sweep: IntervalSweep) -> BaseDistribution:
    low, high, log = sweep.start, sweep.end, "log" in sweep.tags
    if low >= high:
        raise SpaceError(
            key,
            f"interval({low}, {high}) is empty: its low end is not below its high end",
            f"write interval({min(low, high)}, {max(low, high)})" if low != high else "widen it",
        )
    if log and low <= 0:
        raise SpaceError(
            key,
            f"tag(log, interval({low}, {high})) includes values <= 0, which have no logarithm",
            "start the interval above 0 (e.g. 1e-6) or drop tag(log, ...)",
        )
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _range(key: str, sweep: RangeSweep) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    count = math.ceil(round((stop - start) / step, 9)) if step else 0
    if count <= 0:
        raise SpaceError(key, f"range({start}, {stop}, {step}) holds no value", "make stop > start with a positive step")
    if "log" in sweep.tags:
        raise SpaceError(key, "tag(log, ...) applies to interval, not range", "write tag(log, interval(lo, hi))")
    last = start + step * (count - 1)
    if all(isinstance(v, int) for v in (start, stop, step)):
        return IntDistribution(start, last, step=step)
    return FloatDistribution(float(start), float(round(last, 12)), step=float(step))


# ---------------------------------------------------------------- the space


@dataclass(frozen=True)
class Space:
    """A validated space: searched distributions (parents before the parameters they enable) and constants."""

    searched: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    # Budgets: a model over them is rejected before training, like an infeasible one.
    max_params: int | None = None
    max_flops: int | None = None
    warnings: tuple[str, ...] = ()

    def describe(self) -> dict[str, str]:
        """Flat, loggable description: key -> distribution or constant."""
        out = {k: repr(v) for k, v in self.fixed.items()}
        out.update({k: _describe(d) for k, d in self.searched.items()})
        out.update({k: str(v) for k, v in (("max_params", self.max_params), ("max_flops", self.max_flops)) if v is not None})
        return out


def _describe(dist: BaseDistribution) -> str:
    if isinstance(dist, CategoricalDistribution):
        return f"choice{tuple(dist.choices)}"
    log = "log " if getattr(dist, "log", False) else ""
    step = f" step {dist.step}" if getattr(dist, "step", None) not in (None, 1) else ""
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    return f"{log}{kind} [{dist.low}, {dist.high}]{step}"


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML (block2: {kernel_size: ...}) -> dotted keys (block2.kernel_size)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


BUDGETS = ("max_params", "max_flops")


def parse_space(spec: Mapping[str, Any], model: Mapping[str, Any]) -> Space:
    """Validate a space against the model's parameters; raise SpaceError naming the first bad key."""
    for key, value in flatten(model).items():
        _check_model_value(key, value)
    searched: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    flat = flatten(spec)
    budgets = {key: _budget(key, flat.pop(key)) for key in BUDGETS if key in flat}
    for key, text in flat.items():
        rule_for(key)
        parsed = parse_value(key, text)
        if isinstance(parsed, BaseDistribution):
            _check_distribution(key, parsed)
            searched[key] = parsed
        else:
            _check_value(key, parsed)
            fixed[key] = parsed
    ordered = dict(sorted(searched.items(), key=lambda kv: _depth(kv[0])))
    return Space(searched=ordered, fixed=fixed, warnings=_even_kernels(ordered, {**flatten(model), **fixed}), **budgets)


def _budget(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise SpaceError(key, f"{value!r} is not a positive number", f"set {key} to a whole number, e.g. {key}: 200000, or null")
    return int(value)


def _even_kernels(searched: Mapping[str, BaseDistribution], fixed: Mapping[str, Any]) -> tuple[str, ...]:
    """Even kernel sizes are legal in Keras but have no centre pixel, so 'same' padding is lopsided."""
    found = []
    for key in [*searched, *fixed]:
        if key.split(".")[-1] != "kernel_size":
            continue
        dist = searched.get(key)
        values = (
            list(dist.choices)
            if isinstance(dist, CategoricalDistribution)
            else (
                [dist.low, dist.high] if dist is not None else [fixed[key]]  # type: ignore[union-attr]
            )
        )
        if isinstance(dist, IntDistribution) and dist.high > dist.low:
            values = list(range(dist.low, dist.high + 1, dist.step))
        even = sorted({int(v) for v in values if int(v) % 2 == 0})
        if even:
            found.append(f"{key}: even kernel sizes {even} are allowed but have no centre pixel; odd sizes (1, 3, 5) are usual")
    return tuple(found)


def grid_values(space: Space) -> dict[str, list[Any]]:
    """The values a grid sampler may give each parameter; SpaceError for a continuous parameter."""
    grid: dict[str, list[Any]] = {}
    for key, dist in space.searched.items():
        if isinstance(dist, CategoricalDistribution):
            grid[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            grid[key] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            grid[key] = [round(dist.low + i * dist.step, 12) for i in range(count)]
        else:
            raise SpaceError(
                key,
                f"{_describe(dist)} is continuous, so a grid cannot enumerate it",
                "write it as choice(...) or range(...), or use another sampler",
            )
    return grid


def grid_points(space: Space, model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every distinct point a grid walks, once: a value for each parameter that is active at that
    point and nothing for the others (a regularizer's strength only where there is a regularizer,
    block 3's params only with 3 blocks), in the order parents before the parameters they enable.
    Not the product of every parameter's values, which repeats an active point once per value of
    each parameter it leaves inactive. SpaceError for a continuous parameter."""
    values = grid_values(space)
    base = {**flatten(model), **space.fixed}
    points: list[dict[str, Any]] = [{}]
    for key in space.searched:  # parents first (parse_space orders them), so is_active sees them set
        grown: list[dict[str, Any]] = []
        for point in points:
            if is_active(key, {**base, **point}):
                grown += [{**point, key: value} for value in values[key]]
            else:
                grown.append(point)
        points = grown
    return points


def grid_size(points: Sequence[Mapping[str, Any]]) -> int:
    """How many trials a grid has: its distinct active points (`grid_points`)."""
    return len(points)


def _check_model_value(key: str, value: Any) -> None:
    try:
        _check_value(key, value)
    except SpaceError as exc:
        raise SpaceError(f"model.{key}", exc.problem, exc.fix) from None


def _check_distribution(key: str, dist: BaseDistribution) -> None:
    if isinstance(dist, CategoricalDistribution):
        for option in dist.choices:
            _check_value(key, option)
        return
    rule = rule_for(key)
    if rule.names:
        raise SpaceError(key, "a numeric range for a named setting", f"write choice({', '.join(map(str, rule.names))})")
    for end in (dist.low, dist.high):
        _check_value(key, end)
    if rule.kind is int and isinstance(dist, FloatDistribution):
        raise SpaceError(
            key, "a float interval for a whole-number parameter", f"write int(interval({dist.low:g}, {dist.high:g}))"
        )


# ---------------------------------------------------------------- conditions


def _depth(key: str) -> int:
    """Suggestion order: a parameter comes after the ones that decide whether it exists."""
    return len(_parents(key))


def _parents(key: str) -> list[str]:
    chain = []
    match = _BLOCK_KEY.match(key)
    arg = match[2] if match else key
    if match:
        chain.append("blocks")
    if arg.endswith("_regularizer_strength") or arg.endswith("_constraint_value"):
        chain.append(key.rsplit("_", 1)[0])
    return chain


def is_active(key: str, values: Mapping[str, Any]) -> bool:
    """Whether a parameter is used, given the values already chosen (sampled or fixed).

    The regularizer strength exists only with a regularizer, the constraint value only for
    max_norm/min_max_norm, and blockN.* only when the network has at least N blocks.
    """
    match = _BLOCK_KEY.match(key)
    if match and int(match[1]) > int(values.get("blocks", 1)):
        return False
    arg = match[2] if match else key
    if arg.endswith("_regularizer_strength"):
        return values.get(key.removesuffix("_strength"), "none") != "none"
    if arg.endswith("_constraint_value"):
        return values.get(key.removesuffix("_value"), "none") in ("max_norm", "min_max_norm")
    return True


# ---------------------------------------------------------------- the baseline (your model first)


@dataclass(frozen=True)
class BaselinePoint:
    """The configured model as a point of the space: each searched parameter that is active for
    it takes the model's value (conf/model with the user's overrides; the space's constants stay).
    `inside`: values the space holds, enqueued as Optuna params; `outside`: values it does not hold
    (kernel_size=5 against choice(1, 3)), which Optuna cannot record against the space's
    distribution (a categorical refuses them, a range takes them with a warning and would feed the
    sampler a point outside its bounds): the trial runs them as given, and they are recorded beside
    its Optuna params (user attr OUTSIDE_ATTR) and in its MLflow params. `notes`: one line each."""

    inside: dict[str, Any]
    outside: dict[str, Any]
    notes: tuple[str, ...] = ()

    @property
    def params(self) -> dict[str, Any]:
        return {**self.inside, **self.outside}

    def user_attrs(self) -> dict[str, Any]:
        return {BASELINE_ATTR: True, **({OUTSIDE_ATTR: dict(self.outside)} if self.outside else {})}


def model_value(key: str, values: Mapping[str, Any]) -> Any:
    """The configured model's value of a searched key: its own, or for `blockN.<arg>` the shared
    argument (and for blockN.filters the growth rule), as the model builds block N without it."""
    if key in values:
        return values[key]
    match = _BLOCK_KEY.match(key)
    if match and match[2] == "filters":
        return max(1, int(round(values["filters"] * values["filters_growth"] ** (int(match[1]) - 1))))
    if match:
        return values[match[2]]
    raise SpaceError(key, "the model sets no value for this searched key", "set it in conf/model or drop it from the space")


def baseline_point(model: Mapping[str, Any], space: Space) -> BaselinePoint:
    """The configured model's values of the searched params active for it (pure: tested with tables)."""
    values = {**flatten(model), **space.fixed}
    inside: dict[str, Any] = {}
    outside: dict[str, Any] = {}
    notes: list[str] = []
    for key, dist in space.searched.items():
        if not is_active(key, values):
            continue
        value = model_value(key, values)
        values[key] = value
        if _holds(dist, value):
            inside[key] = value
        else:
            outside[key] = value
            notes.append(f"{key}={value!r} is outside the space's {_describe(dist)}")
    return BaselinePoint(inside, outside, tuple(notes))


def _holds(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution) and any(
        isinstance(c, bool) != isinstance(value, bool) for c in dist.choices if c == value
    ):
        return False  # True is not the choice 1
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def outside_values(trial: Any) -> dict[str, Any]:
    """The baseline's values outside the space, from its Optuna trial (or Ray's wrapper of one)."""
    try:
        attrs = trial.user_attrs
    except AttributeError:
        return {}
    return dict(attrs.get(OUTSIDE_ATTR) or {}) if attrs.get(BASELINE_ATTR) else {}


@dataclass(frozen=True)
class DefineByRun:
    """An Optuna define-by-run function that suggests only the parameters that are active.

    The baseline's trial (enqueued with its in-space values) suggests those as fixed params and
    returns its values outside the space, which Ray Tune adds to the trial's config.
    A class rather than a closure: Ray Tune pickles the searcher, and with it this function.
    """

    space: Space
    model: dict[str, Any]

    def __call__(self, trial: Any) -> dict[str, Any] | None:
        values = {**flatten(self.model), **self.space.fixed}
        outside = outside_values(trial)
        given = {}
        for key, dist in self.space.searched.items():
            if is_active(key, values):
                if key in outside:
                    values[key] = given[key] = outside[key]
                else:
                    values[key] = _suggest(trial, key, dist)
        return given or None


def define_by_run(space: Space, model: Mapping[str, Any]) -> DefineByRun:
    return DefineByRun(space, dict(model))


def _suggest(trial: Any, key: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(key, list(dist.choices))
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)


def resolve_params(model: Mapping[str, Any], space: Space, sampled: Mapping[str, Any]) -> dict[str, Any]:
    """The full parameter set of one trial: model defaults < space constants < sampled values."""
    return {**flatten(model), **space.fixed, **sampled}


def pbt_mutations(space: Space) -> dict[str, Any]:
    """The params PBT explores: the continuous ones (learning_rate, dropout, a regularizer's
    strength, ...) that every model of the space has; architecture params stay as sampled."""
    return {
        key: dist
        for key, dist in space.searched.items()
        if type(dist).__name__ == "FloatDistribution" and dist.step is None and is_active(key, {})
    }
