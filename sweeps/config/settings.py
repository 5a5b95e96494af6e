"""The settings of a sweep: small frozen dataclasses, one per config group, and the validated SweepConfig that
the driver, the runner, the tracker and the trials read. Built only by sweeps.config.validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sweeps.core.redaction import redact
from sweeps.space import Space


# Sampler and scheduler settings: None where the option does not read it (sweeps.registry names
# what each reads); the values, defaults included, come from its YAML in conf/, never from here.
@dataclass(frozen=True)
class SamplerSettings:
    name: str
    n_startup_trials: int | None = None
    history: int | None = None  # TPE: the most finished trials it models (sweeps.samplers.factories._BoundedTPESampler)
    population_size: int | None = None  # NSGA-II's generation size
    grid: dict[str, list[Any]] | None = None  # a discrete sampler's values per parameter (the space's choices)
    points: list[dict[str, Any]] | None = None  # and its distinct active points, each tried once (space.grid_points)


@dataclass(frozen=True)
class SchedulerSettings:
    name: str
    grace_period: int | None = None
    reduction_factor: int | None = None
    min_samples: int | None = None  # median: trials whose results make the median
    perturbation_interval: int | None = None  # pbt: epochs between exploit/explore steps (checkpoints there)
    quantile_fraction: float | None = None  # pbt: the bottom fraction clones the top fraction


@dataclass(frozen=True)
class WarmStartSettings:
    points: tuple[dict[str, Any], ...] = ()  # evaluated first, as given (searched params only)
    from_sweep: str | None = None  # an earlier sweep whose finished trials are added as known results (sweeps.driver.warmstart)
    rerun_best: int = 1  # and whose best this many trials are evaluated first (sweeps.driver.warmstart.rerun_points)


@dataclass(frozen=True)
class ResourceSettings:
    cpus_per_trial: float
    gpus_per_trial: float
    num_cpus: int | None
    max_retries: int
    custom: dict[str, float] = field(default_factory=dict)  # extra Ray resources per trial
    checkpoint_every_s: float = 60.0  # an unsaved better epoch is written after at most this long
    keep_checkpoints: int | None = 10  # finished trials whose checkpoints stay: the sweep's best k (None: all)


@dataclass(frozen=True)
class TrackingSettings:
    uri: str | None
    experiment: str
    log_best_model: bool
    registered_model: str | None = None
    log_report: bool = True  # tables and plots on the parent run at the end
    study_storage: str | None = None  # Optuna storage URL (postgresql://, mysql://, sqlite://, grpc://host:port)


@dataclass(frozen=True)
class DatasetSettings:
    name: str
    path: str | None
    val_fraction: float
    limit: int | None
    options: dict[str, Any] = field(default_factory=dict)  # the group's other keys (a folder's image_size, ...)


@dataclass(frozen=True)
class SweepConfig:
    """One validated sweep: what the runner, the tracker and the trials read."""

    name: str
    n_trials: int
    metric: str  # the first objective: drives early stopping and the kept checkpoint
    mode: str
    objectives: tuple[tuple[str, str], ...]  # (metric, mode) of every objective; one unless multi-objective
    max_epochs: int
    seed: int
    time_budget_s: float | None
    stop_at: float | None  # end the sweep once a trial's first objective reaches this (Katib's objective.goal)
    max_failures: int | None  # stop the sweep when more trials than this fail
    max_failure_rate: float | None  # ... or when more than this fraction of finished trials failed
    output_dir: Path
    verbose: bool
    dataset: DatasetSettings
    sampler: SamplerSettings
    scheduler: SchedulerSettings
    resources: ResourceSettings
    tracking: TrackingSettings
    warm_start: WarmStartSettings
    model: dict[str, Any]
    baseline: bool  # trial 0 evaluates the configured model (sweeps.space.baseline_point)
    refit: bool  # the champion refit on train + validation, registered (models.refit)
    max_infeasible_in_a_row: int  # redraws of infeasible proposals before the sweep stops (sweeps.samplers.feasibility)
    space: Space
    resolved: dict[str, Any]  # the whole composed config, resolved, for logging
    space_note: str = ""  # space=auto: what the space was derived from and why each range (sweeps.autospace)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def to_yaml(self) -> str:
        """The resolved config, and under it (as YAML comments) how space=auto derived the space."""
        text = OmegaConf.to_yaml(OmegaConf.create(redact(self.resolved)))
        return f"{text}{self.space_note}\n" if self.space_note else text

    @property
    def sweep_dir(self) -> Path:
        return self.output_dir / "sweeps" / self.name

    @property
    def tracking_uri(self) -> str:
        """The MLflow store: `tracking.uri`, else the sqlite file in `output_dir` (the one rule)."""
        from tracking import default_tracking_uri  # MLflow's door, opened only by who needs the store

        return self.tracking.uri or default_tracking_uri(self.output_dir)
