"""`run_sweep`: a Tune Tuner driven by the searcher (sweeps.execution.search), a scheduler
(sweeps.schedulers), resources, retries; the callbacks and stoppers of sweeps.execution.

The searcher proposes (Optuna, persistent storage), the scheduler stops (ASHA), the executor owns
resources (Tune). Trial outcomes are decided in one pure function, `trial_outcome`, so Optuna and
MLflow always agree on what happened to a trial.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, replace
from typing import Any

import optuna

# Our one-line progress replaces Ray's tables unless verbose. None of Tune's own loggers (JSON,
# CSV, TensorBoard): every result is in MLflow already, and they grow the driver with the trial
# count, an open file and a buffer per trial (Ray issue #64231).
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# A trial's checkpoints, one per epoch that improved its best, each kept by Tune with the whole
# result it came with, for every trial of the sweep (num_to_keep=None: retention is
# KeepBestCheckpoints'): Tune's own switch keeps only the score attribute's value (none is set)
# beside each. The newest checkpoint keeps its result; nothing else reads them.
os.environ.setdefault("TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE", "1")
# Ctrl+C and SIGTERM stop the Tuner through `Interrupted`, which then raises KeyboardInterrupt so
# the sweep's run ends KILLED; Tune's own handler would return as if the sweep had finished.
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import PopulationBasedTraining  # noqa: E402
from ray.tune.stopper import CombinedStopper  # noqa: E402

from sweeps.config.settings import SweepConfig  # noqa: E402
from sweeps.core.protocol import MEMBER, TrialSettings, objective_key  # noqa: E402
from sweeps.driver.progress import Progress  # noqa: E402
from sweeps.driver.recovery import Continuation  # noqa: E402
from sweeps.execution.callbacks import (  # noqa: E402
    ForgetFinished,
    KeepBestCheckpoints,
    TrackingCallback,
    WarmDriverImport,
)
from sweeps.execution.runtime import slots, start_ray  # noqa: E402
from sweeps.execution.search import SweepSearch, is_baseline  # noqa: E402
from sweeps.execution.stoppers import FailureLimit, GoalReached, Interrupted  # noqa: E402
from sweeps.samplers.factories import make_sampler  # noqa: E402
from sweeps.samplers.feasibility import Proposer, Redraws, describe_space  # noqa: E402
from sweeps.schedulers.builtin import SparesTheBaseline, make_scheduler, pause_epochs, stop_epochs  # noqa: E402
from sweeps.schedulers.pbt import PBT, Population, population  # noqa: E402
from sweeps.space import BaselinePoint, baseline_point, define_by_run  # noqa: E402
from sweeps.storage.storages import open_storage
from sweeps.storage.studystore import close_drivers, driver_storage  # noqa: E402
from sweeps.worker.trainable import train_trial
from tracking import SweepTracker  # noqa: E402


@dataclass
class SweepRun:
    """What the orchestrator needs after Ray has finished."""

    study: optuna.Study
    run_ids: dict[str, str]  # tune trial id -> MLflow run id
    wall_time_s: float = 0.0
    stopped_because: str | None = None  # the failure limit that stopped the sweep, if any
    goal_reached: str | None = None  # stop_at reached: why the sweep ended early, a success
    data_bytes: int = 0  # the dataset's size in Ray's object store
    data_nodes: int = 0  # nodes that ran trials, so fetched it once each


def first_points(
    study: optuna.Study,
    points: list[dict[str, Any]],
    rerun: tuple[tuple[str, dict[str, Any]], ...],
    known: tuple[optuna.trial.FrozenTrial, ...],
    baseline: BaselinePoint | None = None,
) -> None:
    """A fresh study's first proposals: the baseline (the configured model, trial 0: the yardstick
    of every other trial, re-runs included, so it exists whatever ends the sweep early), then
    warm_start.points as given, then the earlier sweep's best
    re-run (each marked with the trial it re-runs), both as Optuna's enqueue_trial does (the sampler
    fills in params a point leaves out); then the earlier sweep's finished trials as known results.
    In that order: enqueue_trial(skip_if_exists) skips a point that any trial of the study holds,
    the known results included, and should skip only a point already queued here."""
    from sweeps.driver.warmstart import RERUN_ATTR

    if baseline is not None:
        # An earlier best that is the configured model is re-run once, as the baseline, labelled both ways.
        same = [label for label, params in rerun if params == baseline.inside and not baseline.outside]
        study.enqueue_trial(baseline.inside, user_attrs={**baseline.user_attrs(), **({RERUN_ATTR: same[0]} if same else {})})
        rerun = tuple((label, params) for label, params in rerun if label not in same)
    for point in points:
        study.enqueue_trial(point, skip_if_exists=True)
    for label, params in rerun:
        study.enqueue_trial(params, user_attrs={RERUN_ATTR: label}, skip_if_exists=True)
    if known:
        study.add_trials(known)


def run_sweep(
    cfg: SweepConfig,
    data: dict[str, Any],
    settings: TrialSettings,
    tracker: SweepTracker,
    progress: Progress,
    n_trials: int | None = None,
    experiment: str | None = None,
    continuations: tuple[Continuation, ...] = (),
    warm_start: tuple[optuna.trial.FrozenTrial, ...] = (),
    rerun: tuple[tuple[str, dict[str, Any]], ...] = (),
) -> SweepRun:
    """Run n_trials (default cfg.n_trials) trials into the sweep's study, the `continuations`
    (interrupted trials, each from its checkpoint) first; `experiment` names Ray's result folder
    (a resumed sweep gets a fresh one beside the first). `warm_start`: an earlier sweep's finished
    trials (sweeps.driver.warmstart), added to a fresh study before its first proposal; `rerun`: (label,
    params) of its best, evaluated first after warm_start.points (first_points)."""
    started = time.monotonic()
    start_ray(cfg)
    # Read from memory and written behind: the driver is the study's one writer (sweeps.storage.studystore).
    storage = driver_storage(open_storage(cfg.output_dir, cfg.tracking.study_storage))
    metrics = [m for m, _ in cfg.objectives]
    modes = [d for _, d in cfg.objectives]
    # Warm-start points go first, once: a resumed sweep's study has them already.
    fresh = cfg.name not in optuna.study.get_all_study_names(storage)
    scheduler = make_scheduler(cfg)
    n = n_trials or cfg.n_trials
    points = [dict(p) for p in cfg.warm_start.points] if fresh else []
    baseline = baseline_point(cfg.model, cfg.space) if cfg.baseline and fresh else None
    # Every proposal planned before it reaches a worker: infeasible ones recorded and redrawn.
    proposer = Proposer(
        model=dict(cfg.model),
        fixed=dict(cfg.space.fixed),
        input_shape=settings.input_shape,
        num_classes=settings.num_classes,
        max_params=cfg.space.max_params,
        max_flops=cfg.space.max_flops,
        redraws=Redraws(cfg.max_infeasible_in_a_row, describe_space(cfg.space.searched)),
    )
    search: SweepSearch | Population  # both TrialRecords (sweeps.execution.search)
    if isinstance(scheduler, PopulationBasedTraining):  # it refuses a searcher: its own population
        search = population(
            cfg,
            storage,
            n,
            [objective_key(m) for m in metrics],
            (lambda s: first_points(s, points, rerun, warm_start, baseline)) if fresh else None,
            progress.out,
            proposer,
        )
        explored = search.explored
        search_alg: Any = None  # Tune's own, over the population as one grid of whole configs
        param_space = {MEMBER: tune.grid_search(search.configs)}
    else:
        explored, param_space = (), None
        search = search_alg = SweepSearch(
            space=define_by_run(cfg.space, cfg.model),
            metric=metrics if cfg.multi_objective else cfg.metric,
            mode=modes if cfg.multi_objective else cfg.mode,
            sampler=make_sampler(cfg.sampler, cfg.seed),
            study_name=cfg.name,
            storage=storage,
            objective_keys=[objective_key(m) for m in metrics],
            continuations=continuations,
            proposer=proposer,
        )
        if fresh:
            first_points(search.study, points, rerun, warm_start, baseline)
    if isinstance(scheduler, SparesTheBaseline):
        scheduler.spared = lambda trial_id: is_baseline(search, trial_id)
    callback = TrackingCallback(tracker, search, metrics, progress)
    if isinstance(search, Population):
        for rejected in search.rejected:  # asked up front, before the tracking existed
            callback.record_infeasible(*rejected)
    else:
        proposer.record = callback.record_infeasible
    limit = FailureLimit(callback, cfg.max_failures, cfg.max_failure_rate)
    goal = GoalReached(callback, cfg.metric, cfg.mode, cfg.stop_at)
    interrupted = Interrupted()
    settings = replace(
        settings,
        stop_epochs=stop_epochs(cfg),
        pause_epochs=pause_epochs(cfg),
        stop_at=cfg.stop_at,
        explored=explored,
        continue_from=tuple((c.number, c.checkpoint or "") for c in continuations),
    )
    warm = WarmDriverImport() if cfg.tracking.log_best_model else None
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=data, settings=settings),
        {"cpu": cfg.resources.cpus_per_trial, "gpu": cfg.resources.gpus_per_trial, **cfg.resources.custom},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=scheduler,
            metric=cfg.metric,
            mode=cfg.mode,
            num_samples=1 if explored else n,  # PBT: the grid holds the n members
            # PBT's population is all created at once; Tune time-shares the slots (PBT pauses a member at
            # a perturbation while others wait), so its members compare at the same epochs.
            max_concurrent_trials=None if explored else slots(cfg, ray.cluster_resources().get("CPU", 1)),
            time_budget_s=cfg.time_budget_s,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=experiment or cfg.name,
            stop=CombinedStopper(limit, goal, interrupted),
            storage_path=str(cfg.output_dir / "ray"),
            callbacks=[
                *([search] if isinstance(search, Population) else []),  # before the tracking: maps trials first
                callback,
                KeepBestCheckpoints(
                    cfg.resources.keep_checkpoints,
                    cfg.metric,
                    cfg.mode,
                    callback,
                    pinned=scheduler.pinned if isinstance(scheduler, PBT) else None,
                ),
                *([warm] if warm is not None else []),
                ForgetFinished(),  # last: every other callback has read the finished trial
            ],
            verbose=2 if cfg.verbose else 0,
            # One checkpoint per trial, its newest, and under PBT those PBT still needs: the one it handed
            # a clone not yet saved since, the one it may hand next (KeepBestCheckpoints, PBT.pinned).
            # Not Tune's num_to_keep: it forces a snapshot of the whole experiment at each checkpoint, and
            # deleted a handed checkpoint under a clone that started late, whatever the number kept.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=cfg.resources.max_retries),
        ),
    )
    previous = interrupted.installed()
    try:
        tuner.fit()
    finally:
        close_drivers()  # every Optuna record in the database, whatever ended the sweep
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if interrupted.signum is not None:
        raise KeyboardInterrupt(f"signal {interrupted.signum}")
    if isinstance(search, SweepSearch) and search.error is not None:
        if warm is not None and warm.thread is not None:
            warm.thread.join()  # its import holds fd 2 (models.native_log) until done: the error must reach the terminal
        raise search.error  # too many infeasible proposals in a row: bad input, once the trials are over
    return SweepRun(
        study=search.study,
        run_ids=dict(callback.run_ids),
        wall_time_s=time.monotonic() - started,
        stopped_because=limit.reason,
        goal_reached=goal.reason,
        data_bytes=sum(int(getattr(a, "nbytes", 0)) for a in data.values()),
        data_nodes=len(callback.nodes),
    )
