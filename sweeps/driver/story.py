"""What a sweep's parent run records about it: its params and tags, the command that reproduces it, the
report's plots, the saved view, and its story (the parent run's Markdown note)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.config.validation import SweepConfig
from sweeps.data.datasets import Dataset
from sweeps.space import flatten

if TYPE_CHECKING:
    from sweeps.driver.summary import Summary


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _log_report(cfg: SweepConfig, tracking_uri: str, out: Any, study: Any) -> list[str]:
    """The report's plots on the parent run, so the MLflow UI shows them; a plot that cannot be
    drawn must not turn a finished sweep into a failed one. Returns the logged artifact paths."""
    from sweeps.commands.report import make_report
    from sweeps.testing import faults

    faults.at_driver(point="report")
    try:
        # The driver's own study: every trial is in it, and a second copy from the storage would be the
        # report's largest allocation that grows with the trials (~30 MB per 1,000).
        report = make_report(
            cfg.name, cfg.output_dir, tracking_uri, cfg.tracking.experiment, cfg.tracking.study_storage, study=study
        )
        print(f"Report: {len(report.files)} files in {report.directory} (python -m sweeps report {cfg.name})", file=out)
        return list(report.logged)
    except Exception as exc:  # plotting libraries fail in many ways; the sweep's records are intact
        print(
            f"warning: the report could not be written ({type(exc).__name__}: {exc}); try python -m sweeps report {cfg.name}",
            file=sys.stderr,
        )
        return []


def _story(cfg: SweepConfig, tracker: Any, summary: Summary, dataset: Dataset, plots: list[str]) -> str:
    """The parent run's description in the UI: best trial, counts, data version, how to rerun, plots."""
    from tracking.note import Best, SweepStory, sweep_note

    started_with = tracker.run_tags(summary.parent_run_id).get("sweeps.command")  # a resume reruns the first command
    best = (
        None
        if summary.best_number is None
        else Best(summary.best_number, float(summary.best_value), summary.best_params, summary.best_run_id)
    )  # type: ignore[arg-type]
    extra = (
        [
            f"**Best model:** `{summary.model_uri}`"
            + (
                f", registered as `{summary.registered}`"
                if summary.registered and not (summary.refit is not None and summary.refit.registered)
                else ""
            ),
            "",
        ]
        if summary.model_uri
        else []
    )
    if summary.goal_reached:
        extra += [f"**Ended early, goal met:** {summary.goal_reached}", ""]
    if summary.not_registered:
        extra += [f"**Not registered:** {summary.not_registered}", ""]
    return sweep_note(
        SweepStory(
            name=cfg.name,
            experiment_id=summary.experiment_id,
            run_id=summary.parent_run_id,
            metric=cfg.metric,
            mode=cfg.mode,
            counts=summary.counts,
            dataset=dataset.summary(),
            command=started_with or _command(cfg),
            commit=_git_commit(),
            best=best,
            plots=plots,
            stopped_because=summary.stopped_because,
            extra=extra,
            versus=summary.versus,
            refit=summary.refit,
        )
    )


def _save_view(cfg: SweepConfig, tracker: Any, parent_run_id: str) -> None:
    """The runs table as this sweep's user wants it: its trials, best first, with the objectives,
    the trial number, the outcome and the searched params as columns."""
    from sweeps.core.metrics import EPOCH_METRICS
    from sweeps.core.protocol import best_key, objective_key
    from sweeps.core.records import STATE_TAG
    from tracking.note import view_key

    metrics = [m for metric, _ in cfg.objectives for m in ((best_key(metric), metric) if metric in EPOCH_METRICS else (metric,))]
    tracker.save_runs_view(
        view_key(cfg.name),
        f"Sweep {cfg.name}: trials by {objective_key(cfg.metric)}",
        list(cfg.space.searched),
        metrics,
        tags=["optuna.trial_number", STATE_TAG],
        search_filter=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        order_by=objective_key(cfg.metric),
        ascending=cfg.mode == "min",
    )


def _model_context(cfg: SweepConfig, tracker: Any, dataset: Dataset) -> Any:
    """What every logged model of this sweep shares (tracking.models.ModelContext)."""
    from tracking.models import ModelContext

    return ModelContext(
        sweep=cfg.name,
        experiment_id=tracker.experiment_id,
        input_shape=tuple(dataset.input_shape),
        num_classes=dataset.num_classes,
        dataset_name=dataset.name,
        dataset_digest=dataset.digest,
        preprocessing=dataset.preprocessing(),
        class_names=tuple(dataset.class_names) if dataset.class_names else None,
        mode=cfg.mode,
    )


def _command(cfg: SweepConfig) -> str:
    """How to run this sweep again: its `python -m sweeps run` arguments, where it was started so;
    from Python, the arguments are unknown but the resolved config is on the run."""
    from tracking.note import reproduce_command

    if Path(sys.argv[0]).parts[-2:] == ("sweeps", "__main__.py") and sys.argv[1:2] == ["run"]:
        return reproduce_command(sys.argv[1:], cfg.name)
    return f"python -m sweeps run name={cfg.name}-again ...   # started from Python: the full config is config/resolved.yaml"


def _params(cfg: SweepConfig) -> dict[str, Any]:
    params = {k: v for k, v in flatten(cfg.resolved).items() if not k.startswith("space.")}
    params.update({f"space.{k}": v for k, v in cfg.space.describe().items()})
    return params


def _tags(cfg: SweepConfig, dataset: Dataset, warm: Any = None) -> dict[str, str]:
    tags = {
        "sweeps.name": cfg.name,
        "sweeps.sampler": cfg.sampler.name,
        "sweeps.scheduler": cfg.scheduler.name,
        "sweeps.command": _command(cfg),
        # The UI's Source: the command, not `__main__.py` (tracking.models.source_name).
        "mlflow.source.name": f"python -m sweeps run name={cfg.name}",
        "mlflow.source.type": "LOCAL",
        **dataset.summary(),
    }
    if cfg.warm_start.points:  # where the warm start came from
        tags["sweeps.warm_start"] = (
            f"{len(cfg.warm_start.points)} given points, evaluated first: {json.dumps(list(cfg.warm_start.points))}"[:5000]
        )
    if warm is not None:  # which sweep, how many trials, what was dropped
        tags["sweeps.warm_start_from"] = warm.source
        tags["sweeps.warm_start_trials"] = str(len(warm.trials))
        tags["sweeps.warm_start_note"] = warm.note()[:5000]
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags
