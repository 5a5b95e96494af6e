"""sweeps: hyperparameter sweeps of Keras Conv2D classifiers (Hydra -> Optuna -> Ray Tune -> MLflow).

The Python API, for notebooks and scripts (docs/api.md):

    import sweeps

    summary = sweeps.run(overrides=["n_trials=4", "max_epochs=2"])   # what `python -m sweeps run` prints
    sweep = sweeps.load(summary.name)       # .study (Optuna), .parent_run (MLflow), .trials (pandas)
    report = sweeps.report(summary.name)    # tables and plots under outputs/reports/NAME/, logged to MLflow

Bad input raises `sweeps.InputError` (its `field`, `problem` and `fix`) before anything is written.
Importing this package stays light: Optuna, MLflow, Ray and TensorFlow load when a function runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.core.errors import ConfigError, DatasetError, InputError, SweepsError

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from sweeps.commands.report import Report
    from sweeps.config.settings import SweepConfig
    from sweeps.driver.summary import Summary
    from tracking import RunRecord

__all__ = ["ConfigError", "DatasetError", "InputError", "Sweep", "SweepsError", "compose", "load", "report", "run"]


def compose(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> SweepConfig:
    """The validated config of `python -m sweeps run <overrides>` (Hydra composes `conf/`)."""
    from sweeps.config.validation import load_config

    where = [f"output_dir={output_dir}"] if output_dir is not None else []
    return load_config([*overrides, *where])


def run(overrides: Sequence[str] = (), *, cfg: SweepConfig | None = None, out: Any = None) -> Summary:
    """Run a sweep (or resume the one of that name with the same config) and return its summary:
    `summary.text()` is what the CLI prints; `best_value`, `best_params`, `counts`, `parent_run_id`...
    `summary.not_registered`: why the best model is not registered as asked (the CLI's error line, exit 1).

    Give Hydra `overrides`, or `cfg=sweeps.compose(overrides)` (a validated config, to look at
    first). Progress goes to `out` (default: stdout), through the same redaction as the CLI's."""
    from sweeps.core.redaction import RedactingStream

    cfg = cfg if cfg is not None else compose(overrides)
    _quiet_libraries(cfg.verbose)
    stream = RedactingStream(out or sys.stdout)
    from sweeps.driver import sweep
    from sweeps.storage import storages as search

    try:
        return sweep.start(cfg, stream)
    finally:
        stream.flush()
        search.close_storages()  # the call owns the study storages it opened, as a CLI command does


@dataclass(frozen=True)
class Sweep:
    """A sweep's records, loaded: its Optuna study, its MLflow parent run and one row per trial."""

    name: str
    study: optuna.Study
    parent_run: RunRecord | None  # run_id, params, tags, metrics; None where the store has no such run
    trials: pd.DataFrame  # the report's table: see sweeps.commands.report.build_trials_frame for its columns
    tracking_uri: str
    # The sweep's logged models (its kept checkpoints; the champion's role is "champion"), ranked by
    # the objective as mlflow.search_logged_models ranks them: name, trial, step, model_id, uri,
    # status, role, source_run_id, and one column per metric at the model's step.
    models: pd.DataFrame | None = None


def load(name: str, output_dir: str | Path | None = None, overrides: Sequence[str] = ()) -> Sweep:
    """Sweep `name` as its stores hold it (under `output_dir`, default the config's `outputs`;
    `overrides` such as `tracking.uri=...` name stores elsewhere). Raises InputError for an unknown name."""
    from sweeps.commands.report import build_trials_frame, find_parent_run, load_sweep_study
    from tracking import trial_histories

    cfg = compose(overrides, output_dir)
    study = load_sweep_study(name, cfg.output_dir, cfg.tracking.study_storage)
    uri = cfg.tracking_uri
    parent = find_parent_run(cfg.output_dir, name, uri, cfg.tracking.experiment)
    runs = trial_histories(uri, parent) if parent is not None else {}
    return Sweep(name, study, parent, build_trials_frame(study, runs), uri, _models(uri, parent, name, cfg.metric, cfg.mode))


def _models(uri: str, parent: RunRecord | None, name: str, metric: str, mode: str) -> pd.DataFrame:
    from tracking.models import sweep_models

    if parent is not None:  # the objective the sweep ran with, not the config's now
        metric, mode = parent.params.get("metric", metric), parent.params.get("mode", mode)
    experiment = parent.experiment_id if parent is not None else None
    if experiment is None:
        import pandas as pd

        return pd.DataFrame(columns=["name", "trial", "step", "model_id", "uri", "status", "role", "source_run_id"])
    return sweep_models(uri, experiment, name, metric, mode)


def report(name: str, output_dir: str | Path | None = None, overrides: Sequence[str] = ()) -> Report:
    """Write sweep `name`'s report (as `python -m sweeps report NAME`) and return it: `.frame`,
    `.files` (file name -> path), `.directory`, `.parent_run_id` it was logged to."""
    from sweeps.commands.report import make_report

    cfg = compose(overrides, output_dir)
    return make_report(name, cfg.output_dir, cfg.tracking_uri, cfg.tracking.experiment, cfg.tracking.study_storage)


def _quiet_libraries(verbose: bool) -> None:
    # As the CLI: TensorFlow's C++ start-up lines and MLflow's INFO lines unless verbose=true.
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
