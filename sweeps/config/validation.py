"""Compose conf/ with Hydra, then validate it into small typed settings, before anything is written.

Search-space entries given on the command line (`space.kernel_size='choice(3,5)'`) are taken out
of Hydra's hands first: in compose mode Hydra would read them as its own multirun sweeps.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from sweeps import registry
from sweeps.autospace import AUTO, derive_space
from sweeps.config.compose import CONF_DIR, _nearest, compose_config, explicit_keys
from sweeps.config.settings import (
    DatasetSettings,
    ResourceSettings,
    SamplerSettings,
    SchedulerSettings,
    SweepConfig,
    TrackingSettings,
    WarmStartSettings,
)
from sweeps.core.errors import ConfigError
from sweeps.core.metrics import EPOCH_METRICS
from sweeps.space import Space, SpaceError, flatten, grid_points, grid_size, grid_values, parse_space, pbt_mutations
from sweeps.storage.storages import STORAGE_SCHEMES

REPORTED_METRICS = EPOCH_METRICS  # the objectives a trial reports each epoch
OBJECTIVE_METRICS = (*REPORTED_METRICS, "params", "flops")  # params/flops: known before training
# The lowest value of each sampler/scheduler setting an entry of sweeps.registry may read; the
# values themselves come from conf/sampler/<name>.yaml and conf/scheduler/<name>.yaml only.
SETTING_MINIMUM = {
    "n_startup_trials": 0,
    "history": 250,  # TPE: below 250 its "below" model would no longer be the unbounded one's (sweeps.samplers.factories)
    "population_size": 2,
    "grace_period": 1,
    "reduction_factor": 2,
    "min_samples": 1,
    "perturbation_interval": 1,
    "quantile_fraction": 0.0,
}
FRACTIONS = ("quantile_fraction",)  # settings that are numbers, not whole numbers
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


# ---------------------------------------------------------------- composing


# ---------------------------------------------------------------- known keys


# ---------------------------------------------------------------- validating


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise ConfigError(key, "missing or not a mapping", f"choose a {key} config: {key}=<option>")
    return value


def _number(
    raw: dict[str, Any], key: str, kind: type, low: float | None = None, allow_none: bool = False, label: str | None = None
) -> Any:
    label = label or key
    value = raw.get(key)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise ConfigError(
            label,
            f"{value!r} is not {'a whole number' if kind is int else 'a number'}",
            f"set {label}=<{'integer' if kind is int else 'number'}>",
        )
    if low is not None and value < low:
        raise ConfigError(label, f"{value!r} is below {low:g}", f"set {label} to {low:g} or more")
    return kind(value)


def _choice(raw: dict[str, Any], key: str, options: tuple[str, ...], label: str | None = None) -> str:
    label = label or key
    value = raw.get(key)
    if value not in options:
        raise ConfigError(
            label, f"{value!r} is not one of {', '.join(options)}", f"set {label}={options[0]} (or {', '.join(options[1:])})"
        )
    return str(value)


def _study_storage(raw: dict[str, Any]) -> str | None:
    url = raw.get("study_storage")
    if url is None:
        return None
    if registry.scheme(str(url)) not in STORAGE_SCHEMES:
        raise ConfigError(
            "tracking.study_storage",
            f"{url!r} is not a storage URL Optuna can use",
            "write postgresql://user@host/db, mysql://..., sqlite:////abs/path.db or grpc://host:port, or null",
        )
    return str(url)


def _tracking_uri(raw: dict[str, Any]) -> str | None:
    uri = raw.get("uri")
    if uri is None:
        return None
    if registry.tracking_backend(str(uri)) is None:
        examples = ", ".join(b.example for b in registry.TRACKING_BACKENDS.values())
        raise ConfigError("tracking.uri", f"{uri!r} is not a tracking store sweeps knows", f"write one of {examples}, or null")
    return str(uri)


def _custom(raw: dict[str, Any]) -> dict[str, float]:
    custom = raw.get("custom") or {}
    if not isinstance(custom, dict):
        raise ConfigError("resources.custom", f"{custom!r} is not a mapping", "write resources.custom={name: amount}")
    return {str(k): _number(custom, k, float, 0, label=f"resources.custom.{k}") for k in custom}


def _rate(raw: dict[str, Any]) -> float | None:
    rate = _number(raw, "max_failure_rate", float, 0, allow_none=True)
    if rate is not None and rate >= 1:
        raise ConfigError("max_failure_rate", f"{rate} is not below 1", "set max_failure_rate to a fraction such as 0.5, or null")
    return rate


def _stop_at(raw: dict[str, Any], first: tuple[str, str]) -> float | None:
    goal = _number(raw, "stop_at", float, allow_none=True)
    if goal is not None and first[0].endswith("accuracy") and not 0 < goal <= 1:
        raise ConfigError(
            "stop_at",
            f"{goal:g} is not an accuracy {first[0]} can reach",
            "set stop_at to a fraction in (0, 1], e.g. stop_at=0.98, or null",
        )
    return goal


def _warm_start(raw: dict[str, Any], space: Space) -> WarmStartSettings:
    """warm_start.points=[{learning_rate: 0.01, filters: 32}]: each a point of the searched space."""
    points = raw.get("points") or []
    fix = "write warm_start.points=[{param: value, ...}] with searched params (space.<param>) and values inside their ranges"
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ConfigError("warm_start.points", f"{points!r} is not a list of mappings", fix)
    for i, point in enumerate(points):
        for key, value in point.items():
            label = f"warm_start.points[{i}].{key}"
            dist = space.searched.get(str(key))
            if dist is None:
                raise ConfigError(
                    label,
                    "not a searched parameter of this sweep's space",
                    f"{_nearest(str(key), frozenset(space.searched))}; {fix}",
                )
            try:
                inside = dist._contains(dist.to_internal_repr(value))
            except (ValueError, TypeError):
                inside = False
            if not inside:
                raise ConfigError(label, f"{value!r} is outside the space's {key}", fix)
    source = raw.get("from_sweep")
    if source is not None and not _NAME.match(str(source)):
        raise ConfigError(
            "warm_start.from_sweep",
            f"{source!r} is not a sweep name",
            "write warm_start.from_sweep=<an earlier sweep's name>, or null",
        )
    rerun = _number({"rerun_best": 1, **raw}, "rerun_best", int, low=0, label="warm_start.rerun_best")
    return WarmStartSettings(
        points=tuple(dict(p) for p in points), from_sweep=None if source is None else str(source), rerun_best=rerun
    )


def _with_default(raw: dict[str, Any], key: str) -> dict[str, Any]:
    """`raw` with `key` set from conf/config.yaml where it lacks it (a config saved before the key
    existed, resumed): the default has one home, the YAML."""
    if key in raw:
        return raw
    import yaml

    return {**raw, key: yaml.safe_load((CONF_DIR / "config.yaml").read_text()).get(key)}


def _flag(raw: dict[str, Any], key: str) -> bool:
    value = _with_default(raw, key)[key]
    if not isinstance(value, bool):
        raise ConfigError(key, f"{value!r} is not true or false", f"write {key}=true or {key}=false")
    return value


def _objectives(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """`objectives=[val_accuracy:max, params:min]`, or the single metric/mode."""
    value = raw.get("objectives")
    if value is None:
        return ((_choice(raw, "metric", REPORTED_METRICS), _choice(raw, "mode", ("max", "min"))),)
    fix = "write objectives=[val_accuracy:max,params:min] (metric:mode pairs; the first must be an epoch metric)"
    if not isinstance(value, list) or not value:
        raise ConfigError("objectives", f"{value!r} is not a list of metric:mode", fix)
    pairs = []
    for item in value:
        name, _, mode = str(item).partition(":")
        if name not in OBJECTIVE_METRICS or mode not in ("max", "min"):
            raise ConfigError(
                "objectives",
                f"{item!r} is not metric:mode with metric in {', '.join(OBJECTIVE_METRICS)} and mode max or min",
                fix,
            )
        pairs.append((name, mode))
    if len({n for n, _ in pairs}) != len(pairs):
        raise ConfigError("objectives", "an objective is listed twice", fix)
    if pairs[0][0] not in REPORTED_METRICS:
        raise ConfigError(
            "objectives", f"the first objective {pairs[0][0]!r} is not measured per epoch, so it cannot drive early stopping", fix
        )
    return tuple(pairs)


def _read_settings(raw: dict[str, Any], group: str, name: str, keys: tuple[str, ...]) -> dict[str, float]:
    """The settings an option reads (sweeps.registry), each from the composed config: its YAML or an override."""
    values = {}
    for key in keys:
        if raw.get(key) is None:
            raise ConfigError(
                f"{group}.{key}",
                f"not set, and {group}={name} reads it",
                f"set {key} in conf/{group}/{name}.yaml or override {group}.{key}=<integer>",
            )
        kind = float if key in FRACTIONS else int
        values[key] = _number(raw, key, kind, SETTING_MINIMUM[key], label=f"{group}.{key}")
    return values


def _sampler(
    raw: dict[str, Any], space: Space, model: dict[str, Any], objectives: tuple[tuple[str, str], ...]
) -> SamplerSettings:
    name = _choice(raw, "name", tuple(registry.SAMPLERS), "sampler.name")
    entry = registry.SAMPLERS[name]
    if not entry.multi_objective and len(objectives) > 1:
        several = ", ".join(n for n, e in registry.SAMPLERS.items() if e.multi_objective)
        raise ConfigError("sampler", f"{name} optimises one objective only", f"use one of {several} for several objectives")
    if entry.requires and importlib.util.find_spec(entry.requires) is None:
        raise ConfigError(
            "sampler",
            f"{name} ({entry.summary}) needs {entry.package or entry.requires}, which is not installed",
            f"{entry.install or f'pip install {entry.requires}'}, or use sampler=tpe",
        )
    grid = points = None
    if entry.discrete:
        try:
            grid, points = grid_values(space), grid_points(space, model)
        except SpaceError as exc:
            raise ConfigError(f"space.{exc.key}", exc.problem, exc.fix) from None
    return SamplerSettings(name=name, grid=grid, points=points, **_read_settings(raw, "sampler", name, entry.settings))


def _scheduler(raw: dict[str, Any]) -> SchedulerSettings:
    name = _choice(raw, "name", tuple(registry.SCHEDULERS), "scheduler.name")
    return SchedulerSettings(name=name, **_read_settings(raw, "scheduler", name, registry.SCHEDULERS[name].settings))


def _pbt_population(
    scheduler: SchedulerSettings,
    sampler: SamplerSettings,
    space: Space,
    max_epochs: int,
    explicit: frozenset[str],
    raw: dict[str, Any],
) -> tuple[SamplerSettings, dict[str, Any]]:
    """Tune's PBT refuses a searcher (it rewrites a trial's config mid-run, which a searcher's
    record of that trial cannot follow): its population is sampled at random from the space."""
    if not pbt_mutations(space):
        raise ConfigError(
            "scheduler",
            "pbt explores continuous params, and this space searches none that every model has",
            "search one, e.g. space.learning_rate='tag(log,interval(1e-4,1e-2))' or space.dropout='interval(0,0.5)'",
        )
    if scheduler.quantile_fraction > 0.5:
        raise ConfigError(
            "scheduler.quantile_fraction",
            f"{scheduler.quantile_fraction:g} is more than half the population",
            "set scheduler.quantile_fraction to at most 0.5 (default 0.25)",
        )
    if scheduler.perturbation_interval >= max_epochs:
        raise ConfigError(
            "scheduler.perturbation_interval",
            f"{scheduler.perturbation_interval} leaves no step before max_epochs={max_epochs}",
            f"set scheduler.perturbation_interval below {max_epochs}, or raise max_epochs",
        )
    if sampler.name != "random" and "sampler" in explicit:
        raise ConfigError(
            "sampler",
            f"scheduler=pbt cannot run under sampler={sampler.name}: Tune's PBT refuses a searcher, and a model-based "
            "sampler would learn from values reached by configs PBT changed mid-trial",
            "leave sampler out (PBT's population is sampled at random from the space, seeded), or use another scheduler",
        )
    return replace(sampler, name="random"), {**raw, "sampler": {**raw.get("sampler", {}), "name": "random"}}


def _dataset(d: dict[str, Any]) -> DatasetSettings:
    return DatasetSettings(
        name=_choice(d, "name", tuple(registry.DATASETS), "dataset.name"),
        path=d.get("path"),
        val_fraction=_number(d, "val_fraction", float, label="dataset.val_fraction"),
        limit=_number(d, "limit", int, 2, allow_none=True, label="dataset.limit"),
        options={k: v for k, v in d.items() if k not in ("name", "path", "val_fraction", "limit")},
    )


def _auto_space(spec: dict[str, Any], dataset: DatasetSettings, seed: int) -> tuple[dict[str, Any], str]:
    """With `auto: true`, the space `sweeps.autospace` derives from the dataset's input shape, classes
    and training images (read cheaply: `sweeps.data.datasets.input_facts`), the user's other entries
    over it, and the note saying why; the spec as it was otherwise. The derived spec is what the sweep
    records (its resolved config, the saved config a resume reads), so a resume keeps the same space."""
    if AUTO not in spec:
        return spec, ""
    auto, given = spec[AUTO], {k: v for k, v in flatten(spec).items() if k != AUTO}
    if not isinstance(auto, bool):
        raise ConfigError("space.auto", f"{auto!r} is not true or false", "write space=auto, or choose another space=<name>")
    if not auto:
        return given, ""
    from sweeps.data.datasets import input_facts

    facts = input_facts(dataset.name, dataset.path, dataset.val_fraction, dataset.limit, seed, dataset.options)
    derived = derive_space(*facts.shape, facts.classes, facts.train_images, facts.field).given(given)
    return derived.spec, derived.explain()


def validate(raw: dict[str, Any], explicit: frozenset[str] = frozenset()) -> SweepConfig:
    """`explicit`: the keys the user set on the command line (see `explicit_keys`)."""
    name = str(raw.get("name"))
    if not _NAME.match(name):
        raise ConfigError(
            "name", f"{name!r} is not a usable sweep name", "use letters, digits, '.', '_' and '-' (e.g. name=digits-tpe)"
        )
    output_dir = raw.get("output_dir")
    if not output_dir:
        raise ConfigError("output_dir", "empty", "set output_dir=<folder> (default: outputs)")
    d, sm, sc, rs, tr = (_section(raw, k) for k in ("dataset", "sampler", "scheduler", "resources", "tracking"))
    model, space_spec = _section(raw, "model"), raw.get("space") or {}
    max_epochs = _number(raw, "max_epochs", int, 1)
    objectives = _objectives(raw)
    scheduler = _scheduler(sc)
    graced = scheduler.grace_period is not None
    if graced and scheduler.grace_period > max_epochs and "scheduler.grace_period" not in explicit:
        # A default (conf/scheduler/<name>.yaml) adapts to a short sweep; the record says what ran.
        scheduler = replace(scheduler, grace_period=max_epochs)
        raw = {**raw, "scheduler": {**sc, "grace_period": max_epochs}}
    if graced and scheduler.grace_period > max_epochs:
        raise ConfigError(
            "scheduler.grace_period",
            f"{scheduler.grace_period} is more than max_epochs={max_epochs}",
            f"set scheduler.grace_period to at most {max_epochs}",
        )
    dataset = _dataset(d)
    space_spec, space_note = _auto_space(space_spec, dataset, _number(raw, "seed", int))
    if space_note:
        raw = {**raw, "space": space_spec}
    try:
        space = parse_space(space_spec, model)
    except SpaceError as exc:
        key = exc.key if exc.key.startswith("model.") else f"space.{exc.key}"
        raise ConfigError(key, exc.problem, exc.fix) from None
    sampler = _sampler(sm, space, model, objectives)
    if scheduler.name == "pbt":
        sampler, raw = _pbt_population(scheduler, sampler, space, max_epochs, explicit, raw)
    n_trials = _number(raw, "n_trials", int, 1)
    baseline = _flag(raw, "baseline")
    if sampler.points is not None:  # a grid has no more points to try (beside the baseline, which is no grid point)
        n_trials = min(n_trials, grid_size(sampler.points) + int(baseline))
    return SweepConfig(
        name=name,
        n_trials=n_trials,
        metric=objectives[0][0],
        mode=objectives[0][1],
        objectives=objectives,
        max_epochs=max_epochs,
        seed=_number(raw, "seed", int),
        time_budget_s=_number(raw, "time_budget_s", float, 1, allow_none=True),
        stop_at=_stop_at(raw, objectives[0]),
        max_failures=_number(raw, "max_failures", int, 0, allow_none=True),
        max_failure_rate=_rate(raw),
        output_dir=Path(str(output_dir)).expanduser().resolve(),
        verbose=bool(raw.get("verbose", False)),
        dataset=dataset,
        sampler=sampler,
        scheduler=scheduler,
        resources=ResourceSettings(
            cpus_per_trial=_number(rs, "cpus_per_trial", float, 0.01, label="resources.cpus_per_trial"),
            gpus_per_trial=_number(rs, "gpus_per_trial", float, 0, label="resources.gpus_per_trial"),
            num_cpus=_number(rs, "num_cpus", int, 1, allow_none=True, label="resources.num_cpus"),
            max_retries=_number(rs, "max_retries", int, 0, label="resources.max_retries"),
            custom=_custom(rs),
            checkpoint_every_s=_number(rs, "checkpoint_every_s", float, 0, label="resources.checkpoint_every_s")
            if "checkpoint_every_s" in rs
            else ResourceSettings.checkpoint_every_s,
            keep_checkpoints=_number(rs, "keep_checkpoints", int, 1, allow_none=True, label="resources.keep_checkpoints")
            if "keep_checkpoints" in rs
            else ResourceSettings.keep_checkpoints,
        ),
        tracking=TrackingSettings(
            uri=_tracking_uri(tr),
            experiment=str(tr.get("experiment") or "sweeps"),
            log_best_model=bool(tr.get("log_best_model", True)),
            registered_model=tr.get("registered_model") or None,
            study_storage=_study_storage(tr),
            log_report=bool(tr.get("log_report", True)),
        ),
        warm_start=_warm_start(raw.get("warm_start") or {}, space),
        baseline=baseline,
        refit=_flag(raw, "refit"),
        max_infeasible_in_a_row=_number(_with_default(raw, "max_infeasible_in_a_row"), "max_infeasible_in_a_row", int, 1),
        model=flatten(model),  # nested groups (augment: {flip: ...}) as the dotted keys a space names
        space=space,
        resolved=raw,
        space_note=space_note,
    )


def load_config(overrides: list[str], config_dir: Path = CONF_DIR) -> SweepConfig:
    return validate(compose_config(overrides, config_dir), explicit_keys(overrides))
