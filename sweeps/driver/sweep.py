"""One sweep from validated config to summary: dataset, tracker, Ray run, best model, report; `start`
and `resume`. The pieces are the driver's: checks, state and locks, story, summary.

Everything that can be wrong with the input is checked before the first record is written.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import yaml

from sweeps.config.saved import load_saved_config
from sweeps.config.settings import SweepConfig
from sweeps.core.errors import ConfigError
from sweeps.core.records import STATE_TAG
from sweeps.core.redaction import redact
from sweeps.data.datasets import Dataset, load_dataset, record_folder
from sweeps.driver.checks import _check_feasible, _check_study_storage, _prepare_output
from sweeps.driver.state import SweepState, _atomic_write, _driver_lock, _state_under_lock, _stores_lock, fingerprint
from sweeps.driver.story import _log_report, _model_context, _params, _save_view, _story, _tags
from sweeps.driver.summary import Summary, _summarise
from sweeps.storage.storages import (
    close_storages,
    initialising,
    open_storage,
    study_exists,
)


def start(cfg: SweepConfig, out: Any = sys.stdout) -> Summary:
    """`run`: a new sweep, or, when one of that name exists with the same config, its resumption."""
    _check_study_storage(cfg)
    state = SweepState.load(cfg)
    if state is not None:
        if state.fingerprint != fingerprint(cfg):
            raise ConfigError(
                "name",
                f"a sweep named {cfg.name!r} already exists in {cfg.output_dir} with a different space, model or data",
                f"continue it as it was with `python -m sweeps resume {cfg.name}`, or pick another name=<new name>",
            )
        print(f"Sweep {cfg.name} exists with this config: resuming it (same as python -m sweeps resume {cfg.name})", file=out)
        return _execute(cfg, state, out)
    if study_exists(cfg.output_dir, cfg.name, cfg.tracking.study_storage):
        raise ConfigError(
            "name", f"a sweep named {cfg.name!r} already exists in {cfg.output_dir}", "pick another name=<new name>"
        )
    return _execute(cfg, None, out)


def resume(name: str, output_dir: Path, overrides: list[str], out: Any = sys.stdout) -> Summary:
    cfg = load_saved_config(name, output_dir, overrides)
    _check_study_storage(cfg)
    state = SweepState.load(cfg)
    if state is None:
        raise ConfigError(
            "name", f"sweep {name!r} never started its records", f"start it again with python -m sweeps run name={name}"
        )
    return _execute(cfg, state, out)


def _execute(cfg: SweepConfig, state: SweepState | None, out: Any) -> Summary:
    """Every check first (nothing written if one fails), then the sweep."""
    dataset = load_dataset(
        cfg.dataset.name,
        cfg.dataset.path,
        cfg.dataset.val_fraction,
        cfg.dataset.limit,
        cfg.seed,
        cfg.dataset.options,
        cfg.output_dir,
    )
    if state is not None and state.dataset_digest != dataset.digest:
        from sweeps.data.versions import what_changed

        raise ConfigError(
            "dataset",
            f"the data changed since sweep {cfg.name!r} started (digest {state.dataset_digest[:12]} -> {dataset.digest[:12]}"
            f"{what_changed(cfg.output_dir, state.dataset_digest, dataset)})",
            "restore the original data to resume, or start a new sweep on the new data with name=<new name>",
        )
    _check_feasible(cfg, dataset)
    warm = _load_warm_start(cfg) if state is None and cfg.warm_start.from_sweep else None
    # Heavy imports only once the input is known to be good.
    from sweeps.execution import runtime
    from tracking import import_store_modules, unreachable

    tracking_uri = state.tracking_uri if state else cfg.tracking_uri
    problem = unreachable(tracking_uri)
    if problem:
        raise ConfigError(
            "tracking.uri", problem, "start the server (python -m mlflow server ...) or set tracking.uri=null for the local store"
        )
    # Starting Ray mostly waits on its processes: import the store modules meanwhile (joined before
    # any other import can race with them).
    importing = threading.Thread(target=import_store_modules, name="import-stores", daemon=True)
    importing.start()
    try:
        runtime.start_ray(cfg)  # before any write: a GPU the cluster lacks is bad input too
        if dataset.stream is not None:  # every node reads the folder itself
            runtime.check_nodes_see(dataset.stream.sample_paths(), str(cfg.dataset.path))
    finally:
        importing.join()
    try:
        if state is None:
            _prepare_output(cfg)
        with _driver_lock(cfg):
            return _sweep(cfg, _state_under_lock(cfg, state), dataset, tracking_uri, out, warm)
    finally:
        runtime.shutdown()
        close_storages()


def _load_warm_start(cfg: SweepConfig) -> Any:
    """The earlier sweep's trials that warm_start.from_sweep adds (sweeps.driver.warmstart), read before
    anything is written; bad input stops the run here."""
    from sweeps.driver.warmstart import FIELD, load_warm_start

    source = cfg.warm_start.from_sweep
    assert source is not None
    if cfg.tracking.study_storage is None and not (cfg.output_dir / "optuna.db").exists():
        raise ConfigError(
            FIELD, f"no sweep named {source!r}: {cfg.output_dir} holds no sweeps yet", "run that sweep first in this output_dir"
        )
    saved_path = cfg.output_dir / "sweeps" / source / "config.yaml"
    saved = yaml.safe_load(saved_path.read_text()) if saved_path.is_file() else None
    names = None
    if isinstance(saved, dict):
        names = [str(o).partition(":")[0] for o in saved["objectives"]] if saved.get("objectives") else [saved.get("metric")]
    return load_warm_start(
        source,
        cfg.name,
        open_storage(cfg.output_dir, cfg.tracking.study_storage),
        cfg.space,
        cfg.objectives,
        names,
        cfg.warm_start.rerun_best,
    )


def _sweep(
    cfg: SweepConfig, state: SweepState | None, dataset: Dataset, tracking_uri: str, out: Any, warm: Any = None
) -> Summary:
    from tracking import SweepTracker

    started = time.monotonic()
    with _stores_lock(cfg.output_dir):
        # Two sweeps starting at once on fresh stores would both create the sqlite tables (and on
        # PostgreSQL, from two output folders, the tables and the experiment: `initialising`).
        with initialising(tracking_uri):
            tracker = SweepTracker(
                tracking_uri, cfg.tracking.experiment, cfg.output_dir / "mlartifacts", journal_dir=cfg.sweep_dir / "journal"
            )
        open_storage(cfg.output_dir, cfg.tracking.study_storage)
    if state is None:
        # space=auto: the derived space is in `resolved`; why each range, as comments under it
        saved = yaml.safe_dump(redact(cfg.resolved), sort_keys=False) + (f"{cfg.space_note}\n" if cfg.space_note else "")
        parent = tracker.start_sweep(cfg.name, redact(_params(cfg)), _tags(cfg, dataset, warm), saved)
        state = SweepState(parent, tracker.experiment_id, tracking_uri, dataset.digest, fingerprint(cfg))
        _atomic_write(cfg.sweep_dir / "config.yaml", saved)
        state.save(cfg)
        resuming = False
    else:
        tracker.reopen_sweep(state.parent_run_id)
        state = SweepState(**{**asdict(state), "segments": state.segments + 1})
        state.save(cfg)
        resuming = True
    # From here every way out ends the parent run: FINISHED, FAILED with the error, KILLED on interrupt.
    previous = _sigterm_interrupts()
    try:
        return _run_and_summarise(cfg, state, resuming, tracker, dataset, tracking_uri, out, started, warm)
    except KeyboardInterrupt:
        _end_parent(tracker, "KILLED", {STATE_TAG: "KILLED"})
        raise
    except BaseException as exc:
        last = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1][:500]
        _end_parent(
            tracker,
            "FAILED",
            {STATE_TAG: "FAILED", "sweeps.error": last, "sweeps.error_type": type(exc).__name__},
            "".join(traceback.format_exception(exc)),
        )
        raise
    finally:
        if previous is not False:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _sigterm_interrupts() -> Any:
    """SIGTERM (`kill`, `ray job stop`, a scheduler's time limit) ends the sweep as Ctrl+C does,
    so its run ends KILLED; returns the handler it replaced (False off the main thread: none set)."""
    if threading.current_thread() is not threading.main_thread():
        return False

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def _end_parent(tracker: Any, status: str, tags: dict[str, str], error: str | None = None) -> None:
    """End the parent run after an error; a store that fails now must not hide the first error."""
    from tracking import RunStatus

    try:
        tracker.end_sweep({}, tags, RunStatus(status), error=error)
    except Exception as exc:  # the store itself may be what failed
        print(
            f"warning: the sweep's MLflow run {tracker.parent_run_id} could not be ended {status} ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )


def _run_and_summarise(
    cfg: SweepConfig,
    state: SweepState,
    resuming: bool,
    tracker: Any,
    dataset: Dataset,
    tracking_uri: str,
    out: Any,
    started: float,
    warm: Any = None,
) -> Summary:
    import optuna

    from sweeps.core.outcomes import Outcome
    from sweeps.core.protocol import TrialSettings
    from sweeps.driver.progress import Progress
    from sweeps.driver.recovery import counted, interrupted, reconcile
    from sweeps.execution import runner, runtime
    from sweeps.testing import faults
    from tracking import RunStatus, get_run

    continuations: list[Any] = []
    study = None
    if not resuming:
        tracker.log_dataset(state.parent_run_id, dataset.x_train, dataset.y_train, dataset.name, dataset.source, dataset.digest)
        record_folder(dataset, cfg.output_dir, tracker, state.parent_run_id)
        _save_view(cfg, tracker, state.parent_run_id)
    else:
        replayed = tracker.replay_journal()  # what the killed driver had queued but not written
        tracker.use_dataset(dataset.x_train, dataset.y_train, dataset.name, dataset.source, dataset.digest)
        study = optuna.load_study(study_name=cfg.name, storage=open_storage(cfg.output_dir, cfg.tracking.study_storage))
        parent = get_run(tracking_uri, state.parent_run_id)
        # PBT's members are not continued: a member's clones are no one Optuna trial's history
        # (sweeps.schedulers.pbt.Population); its interrupted members are recorded so, and new ones drawn.
        limit = 0 if cfg.scheduler.name == "pbt" else cfg.n_trials - counted(study)
        continuations = interrupted(study, parent, tracking_uri, limit)
        for c in continuations:  # epochs its snapshot holds that never reached the store
            for epoch, values in c.missing:
                if c.run_id:
                    tracker.log_metrics(c.run_id, values, step=epoch)
        mended = reconcile(study, tracker, parent, Outcome.INTERRUPTED, keep={c.number for c in continuations})
        going_on = ", ".join(f"#{c.number} from epoch {c.epoch + 1}" for c in continuations)
        redone = sum(c.redone for c in continuations)
        print(
            f"Resuming sweep {cfg.name}: {counted(study)} of {cfg.n_trials} trials done"
            + (f"; continuing {len(continuations)} interrupted ({going_on})" if continuations else "")
            + (f"; {redone} epochs that finished before the stop are trained again (no snapshot held them)" if redone else "")
            + (f"; {mended} interrupted ones recorded as failed" if mended else "")
            + (f"; {replayed} values the stopped driver had queued now written" if replayed else ""),
            file=out,
            flush=True,
        )
    for warning in cfg.space.warnings:
        print(f"warning: space.{warning}", file=sys.stderr)
    if warm is not None:
        print(f"Warm start: {warm.note()}", file=out, flush=True)
    remaining = cfg.n_trials - (counted(study) if study is not None else 0)
    print(
        f"Sweep {cfg.name}: {remaining} trials to run on {dataset.name} ({len(dataset.x_train)} train / {len(dataset.x_val)} val, "
        f"digest {dataset.digest[:12]}), MLflow run {state.parent_run_id}",
        file=out,
        flush=True,
    )

    if cfg.tracking.log_best_model:  # each kept checkpoint a logged model (tracking.models)
        tracker.log_models(_model_context(cfg, tracker, dataset))
    settings = TrialSettings(
        model={**cfg.model, **cfg.space.fixed},
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        objectives=cfg.objectives,
        max_epochs=cfg.max_epochs,
        seed=cfg.seed,
        cpus=max(1, int(cfg.resources.cpus_per_trial)),
        gpu_fraction=cfg.resources.gpus_per_trial,
        max_params=cfg.space.max_params,
        max_flops=cfg.space.max_flops,
        checkpoint_every_s=cfg.resources.checkpoint_every_s,
    )
    progress = Progress(total=remaining, metric=cfg.metric, mode=cfg.mode, out=out)

    stopped_because, goal_reached, moved = None, None, {}
    if remaining > 0:
        result = runner.run_sweep(
            cfg,
            dataset.arrays(),
            settings,
            tracker,
            progress,
            n_trials=remaining,
            experiment=cfg.name if state.segments == 1 else f"{cfg.name}-resume{state.segments - 1}",
            continuations=tuple(continuations),
            warm_start=warm.trials if warm is not None else (),
            rerun=warm.rerun if warm is not None else (),
        )
        study, stopped_because, goal_reached = result.study, result.stopped_because, result.goal_reached
        runtime.shutdown()  # the summary and report need no Ray
        # What was measured: the dataset's size in the object store and the nodes that ran trials
        # (bytes moved per node are not measured, so no figure claims them).
        moved = {"data_bytes": result.data_bytes, "data_nodes": result.data_nodes}
    tracker.flush()  # every queued value in the store before it is read back
    assert study is not None
    reconcile(study, tracker, get_run(tracking_uri, state.parent_run_id), Outcome.NOT_RUN)
    faults.at_driver(point="summary")
    summary = replace(_summarise(cfg, study, tracker, dataset, started, stopped_because), goal_reached=goal_reached)
    plots = _log_report(cfg, tracking_uri, out, study) if cfg.tracking.log_report else []
    tracker.describe(state.parent_run_id, _story(cfg, tracker, summary, dataset, plots))
    status = RunStatus.FINISHED if stopped_because is None else RunStatus.FAILED
    tracker.end_sweep(
        {
            f"best_{cfg.metric}": summary.best_value if summary.best_value is not None else float("nan"),
            "wall_time_s": summary.wall_time_s,
            **moved,
            **{f"trials_{k.lower()}": v for k, v in summary.counts.items()},
        },
        {
            "sweeps.best_run_id": summary.best_run_id or "",
            "sweeps.best_model_uri": summary.model_uri or "",
            "sweeps.study": summary.study_url,
            "sweeps.objectives": ",".join(f"{m}:{d}" for m, d in cfg.objectives),
            "sweeps.segments": str(state.segments),
            STATE_TAG: status.value,
            **({"sweeps.stopped_because": stopped_because} if stopped_because else {}),
            **({"sweeps.ended_because": goal_reached} if goal_reached else {}),
            **({"sweeps.pareto_trials": ",".join(str(p["number"]) for p in summary.pareto)} if summary.pareto else {}),
        },
        status,
    )
    return summary
