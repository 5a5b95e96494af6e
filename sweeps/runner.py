"""The only door to Ray: a Tune Tuner driven by OptunaSearch, a scheduler, resources, retries.

The searcher proposes (Optuna, persistent storage), the scheduler stops (ASHA), the executor owns
resources (Tune). Trial outcomes are decided in one pure function, `trial_outcome`, so Optuna and
MLflow always agree on what happened to a trial.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

# Our one-line progress replaces Ray's tables unless verbose; TensorBoard's logger is left out
# (it rejects the -inf an infeasible trial reports); JSON and CSV results are kept, explicitly.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# Ctrl+C and SIGTERM stop the Tuner through `Interrupted`, which then raises KeyboardInterrupt so
# the sweep's run ends KILLED; Tune's own handler would return as if the sweep had finished.
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback  # noqa: E402
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402
from ray.tune.stopper import CombinedStopper  # noqa: E402

from sweeps import faults  # noqa: E402
from sweeps.checkpoints import BestCheckpoints  # noqa: E402
from sweeps.config import ConfigError, SweepConfig  # noqa: E402
from sweeps.feasibility import Proposer, Redraws, Rejection, describe_space  # noqa: E402
from sweeps.outcomes import RUN_STATUS, Outcome, trial_outcome  # noqa: E402
from sweeps.progress import Progress  # noqa: E402
from sweeps.recovery import Continuation  # noqa: E402
from sweeps.registry import SCHEDULERS  # noqa: E402
from sweeps.search import exhausted, make_sampler, open_storage  # noqa: E402
from sweeps.space import BASELINE_ATTR, BaselinePoint, baseline_point, define_by_run  # noqa: E402
from sweeps.studystore import close_drivers, driver_storage  # noqa: E402
from sweeps.sysmetrics import system_metrics  # noqa: E402
from sweeps.trial import (  # noqa: E402
    CLONED_FROM,
    CONTINUES,
    EPOCH,
    EPOCH_METRICS,
    EXPLORED_PREFIX,
    FAILED_ERROR,
    FINISHED,
    INFEASIBLE,
    MEMBER,
    MEMBER_NUMBER,
    MODEL_FILE,
    TrialSettings,
    best_key,
    objective_key,
    reached_goal,
    train_trial,
    trial_params,
)
from tracking import RunStatus, SweepTracker  # noqa: E402


class SweepSearch(OptunaSearch):
    """OptunaSearch that tells Optuna the truth: early-stopped trials PRUNED, errors FAIL, the
    objective = the best epoch's value (the checkpoint that is kept), infeasible trials PRUNED with
    no intermediate value so TPE ranks them worst and learns to avoid them. Interrupted trials of
    a resumed sweep are proposed first, as themselves: same Optuna trial, same params."""

    def __init__(
        self,
        *args: Any,
        objective_keys: list[str],
        continuations: tuple[Continuation, ...] = (),
        proposer: Proposer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._objective_keys = objective_keys
        self.proposer = proposer  # plans each proposal: infeasible ones are recorded and redrawn (sweeps.feasibility)
        self.error: ConfigError | None = None  # too many infeasible in a row: raised once Tune has stopped
        self._to_continue = list(continuations)
        self.continued: dict[str, Continuation] = {}  # tune trial id -> what it continues
        self._last: dict[str, dict] = {}  # tune trial id -> its last result

    def optuna_trial(self, trial_id: str) -> optuna.Trial | None:
        return self._ot_trials.get(trial_id)

    def suggest(self, trial_id: str) -> dict | None:
        faults.at_driver(suggested=len(self._ot_trials) + 1)
        if trial_id in self._ot_trials or (not self._to_continue and self.proposer is None):
            return super().suggest(trial_id)
        if not self._to_continue:
            return self._feasible(trial_id)
        todo = self._to_continue.pop(0)
        storage = self._ot_study._storage
        ot_trial = optuna.Trial(
            self._ot_study, storage.get_trial_id_from_study_id_trial_number(self._ot_study._study_id, todo.number)
        )
        self._ot_trials[trial_id] = ot_trial
        self.continued[trial_id] = todo
        params = self._suggest_from_define_by_run_func(self._space, ot_trial)  # the values it already has
        return {**params, CONTINUES: todo.number}

    def _feasible(self, trial_id: str) -> dict | str | None:
        """A proposal the plan accepts, the rejected ones recorded and redrawn; FINISHED once a grid
        or brute force has no point left, or after too many infeasible in a row (`error`)."""
        from ray.tune.search import Searcher
        from ray.tune.utils.util import unflatten_dict

        assert self.proposer is not None
        study = self._ot_study
        try:
            proposed = self.proposer.propose(
                study,
                lambda t: self._suggest_from_define_by_run_func(self._space, t),
                lambda: exhausted(study.sampler, study),
            )
        except ConfigError as exc:
            self.error = exc
            return Searcher.FINISHED
        if proposed is None:
            return Searcher.FINISHED
        ot_trial, params = proposed
        self._ot_trials[trial_id] = ot_trial
        return unflatten_dict(params)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._last[trial_id] = result
        if not result.get(INFEASIBLE) and not result.get(
            FAILED_ERROR
        ):  # Optuna's intermediate values by epoch, as MLflow's steps
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is not None and trial_id not in self._completed_trials and not isinstance(self.metric, list):
                ot_trial.report(result[self.metric], result.get(EPOCH, result["training_iteration"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        # Tune stops a PAUSED trial (HyperBand's brackets) without its result: decide from the last
        # one it reported, as the tracking callback does from trial.last_result, so both agree.
        result = result if result is not None else self._last.get(trial_id)
        self._last.pop(trial_id, None)
        outcome = trial_outcome(result, error)
        ot_trial.set_user_attr("outcome", outcome.value)
        if outcome is Outcome.INFEASIBLE:
            ot_trial.set_user_attr("infeasible_reason", str(result[INFEASIBLE]))  # type: ignore[index]
        if outcome is Outcome.COMPLETE:
            values = [float(result[key]) for key in self._objective_keys]  # type: ignore[index]
            self._ot_study.tell(ot_trial, values if len(values) > 1 else values[0])
        else:
            state = optuna.trial.TrialState.FAIL if outcome is Outcome.FAILED else optuna.trial.TrialState.PRUNED
            self._ot_study.tell(ot_trial, state=state)
        self._completed_trials.add(trial_id)


class Population(tune.Callback):
    """scheduler=pbt's own search and its Optuna records. Tune's PBT refuses a searcher: it rewrites
    a trial's config when the trial clones a better one, which a searcher's record of that trial
    cannot follow. So the population (n_trials members) is asked from the sweep's study up front,
    sampled at random from the space with the sweep's seed (the points queued first: first_points),
    and given to Tune as fixed configs; each member is told to Optuna when it ends, as SweepSearch
    tells its trials, with the params it ended with (`pbt_final_params`) beside the ones it started with."""

    def __init__(
        self,
        study: optuna.Study,
        suggest: Callable[[optuna.Trial], dict[str, Any] | None],
        n: int,
        objective_keys: list[str],
        explored: tuple[str, ...],
        proposer: Proposer | None = None,
    ) -> None:
        self._ot_study, self._objective_keys, self._explored = study, objective_keys, explored
        self._members: dict[int, optuna.Trial] = {}
        self.configs = []
        # Infeasible members are redrawn as SweepSearch redraws; their records wait for the tracking.
        self.rejected: list[tuple[optuna.Trial, dict[str, Any], Rejection]] = []
        if proposer is not None:
            proposer.record = lambda trial, config, why: self.rejected.append((trial, config, why))

        def config_of(member: optuna.Trial) -> dict[str, Any]:
            outside = suggest(member)  # the baseline's values outside the space, else None
            return {**member.params, **(outside or {})}

        for _ in range(n):
            if proposer is not None:
                member, config = proposer.propose(study, config_of)  # type: ignore[misc]
            else:
                member = study.ask()
                config = config_of(member)
            self._members[member.number] = member
            self.configs.append({**config, MEMBER_NUMBER: member.number})
        self._ot_trials: dict[str, optuna.Trial] = {}
        self.continued: dict[str, Continuation] = {}  # a resumed PBT sweep continues no trial
        self._last: dict[str, tuple[dict, dict]] = {}  # tune trial id -> last result, config then
        self._reported: dict[str, set[int]] = {}
        self._told: set[str] = set()

    def optuna_trial(self, trial_id: str) -> optuna.Trial | None:
        return self._ot_trials.get(trial_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id not in self._ot_trials:  # its own config, before any clone copied another's
            self._ot_trials[trial.trial_id] = self._members[int(trial.config[MEMBER][MEMBER_NUMBER])]

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._last[trial.trial_id] = (result, dict(trial.config))
        ot_trial = self._ot_trials.get(trial.trial_id)
        if ot_trial is None or result.get(INFEASIBLE) or result.get(FAILED_ERROR) or trial.trial_id in self._told:
            return
        epoch, seen = int(result.get(EPOCH, 0)), self._reported.setdefault(trial.trial_id, set())
        metric = self._objective_keys[0].removeprefix("best_")
        if len(self._ot_study.directions) == 1 and metric in result and epoch not in seen:
            ot_trial.report(float(result[metric]), epoch)  # as SweepSearch does: by epoch
            seen.add(epoch)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tell(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tell(trial, error=True)

    def _tell(self, trial: Any, error: bool) -> None:
        ot_trial = self._ot_trials.get(trial.trial_id)
        if ot_trial is None or trial.trial_id in self._told:
            return
        result, config = self._last.pop(trial.trial_id, (trial.last_result, dict(trial.config)))
        outcome = trial_outcome(result, error)
        ot_trial.set_user_attr("outcome", outcome.value)
        final = trial_params(config)
        if final != ot_trial.params:
            ot_trial.set_user_attr("pbt_final_params", final)
        if outcome is Outcome.INFEASIBLE:
            ot_trial.set_user_attr("infeasible_reason", str(result[INFEASIBLE]))
        if outcome is Outcome.COMPLETE:
            values = [float(result[key]) for key in self._objective_keys]
            self._ot_study.tell(ot_trial, values if len(values) > 1 else values[0])
        else:
            state = optuna.trial.TrialState.FAIL if outcome is Outcome.FAILED else optuna.trial.TrialState.PRUNED
            self._ot_study.tell(ot_trial, state=state)
        self._told.add(trial.trial_id)


class KeepBestCheckpoints(tune.Callback):
    """Keeps one checkpoint per trial, its newest, and deletes the checkpoints of finished trials
    outside the sweep's best k (sweeps.checkpoints); a 1,000-trial sweep keeps k models, not 1,000.
    Failed, pruned and infeasible trials keep none."""

    def __init__(self, keep: int | None, metric: str, mode: str, tracking: TrackingCallback, newest_only: bool = True) -> None:
        self.book, self.key, self.tracking = BestCheckpoints(keep, mode), best_key(metric), tracking
        self.newest_only = newest_only  # False under PBT: Tune keeps the few a clone may still be reading
        self.folders: dict[str, Path] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.folders[trial.trial_id] = Path(trial.storage.trial_fs_path)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        complete = trial_outcome(trial.last_result, error=False) is Outcome.COMPLETE
        self._finished(trial.trial_id, trial.last_result.get(self.key) if complete else None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial.trial_id, None)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        # A trial's newest checkpoint holds its best epoch so far and is what a retry, a resume or
        # PBT goes on from: the older ones go. (Tune's own CheckpointConfig(num_to_keep) would do
        # this, but forces a snapshot of the whole experiment's state, every trial's, at each
        # checkpoint: quadratic in the trials, and the product resumes from its own records.)
        if not self.newest_only:
            return
        newest = Path(checkpoint.path)
        for older in newest.parent.glob("checkpoint_*"):
            if older != newest:
                shutil.rmtree(older, ignore_errors=True)

    def _finished(self, trial_id: str, value: float | None) -> None:
        for dropped in self.book.finished(trial_id, value):
            folder = self.folders.get(dropped)
            ot_trial = self.tracking.search.optuna_trial(dropped)
            if folder is None or (ot_trial is not None and ot_trial.user_attrs.get(BASELINE_ATTR)):
                continue  # the baseline's model is kept: the summary test-scores it beside the champion
            for checkpoint in folder.glob("checkpoint_*"):
                shutil.rmtree(checkpoint, ignore_errors=True)
            run_id = self.tracking.run_ids.get(dropped)
            if run_id:
                self.tracking.tracker.set_tags(
                    run_id, {"sweeps.checkpoint": "deleted: not among the sweep's best resources.keep_checkpoints"}
                )


class TrackingCallback(tune.Callback):
    """Mirrors every Tune trial into a nested MLflow run, from the driver process."""

    def __init__(
        self,
        tracker: SweepTracker,
        search: SweepSearch | Population,
        objectives: list[str],
        progress: Progress,
    ) -> None:
        self.tracker, self.search, self.progress = tracker, search, progress
        self.clones: dict[str, list[str]] = {}  # tune trial id -> its PBT exploits, described
        self.first_key = best_key(objectives[0])
        self.best_keys = [best_key(m) for m in objectives if m in EPOCH_METRICS]
        self.run_ids: dict[str, str] = {}
        self.nodes: set[str] = set()
        self.outcomes: dict[str, Outcome] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.run_ids:
            return  # a retry restarts the same trial: same run
        ot_trial = self.search.optuna_trial(trial.trial_id)
        number = ot_trial.number if ot_trial is not None else -1
        params = trial_params(trial.config)
        tags = {"tune.trial_id": trial.trial_id, "optuna.trial_number": str(number), **baseline_tags(ot_trial)}
        continued = self.search.continued.get(trial.trial_id)
        if continued is not None and continued.run_id:
            run_id = continued.run_id
            self.tracker.reopen_trial(run_id, params)
            self.tracker.set_tags(
                run_id,
                {**tags, "sweeps.continued_from_epoch": str(continued.epoch), "sweeps.epochs_redone": str(continued.redone)},
            )
        else:
            run_id = self.tracker.start_trial(f"trial-{number:03d}", params, tags)
        self.run_ids[trial.trial_id] = run_id
        self.progress.trial_started()
        if ot_trial is not None:
            ot_trial.set_user_attr("mlflow_run_id", run_id)
            ot_trial.set_user_attr("tune_trial_id", trial.trial_id)
            if trial.path:  # where its checkpoints go, for a resume that finds no checkpoint attr
                ot_trial.set_user_attr("trial_dir", str(trial.path))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get(INFEASIBLE) or result.get(FAILED_ERROR) or trial.trial_id not in self.run_ids:
            return
        # The trial's own epoch, not Tune's iteration count, which starts again at 1 in a trial
        # continued from a checkpoint by a resumed sweep.
        step = int(result.get(EPOCH, result["training_iteration"]))
        values = {k: result[k] for k in (*EPOCH_METRICS, *self.best_keys) if k in result}
        values["epoch_time_s"] = result.get("time_this_iter_s", math.nan)
        values["worker_rss_mb"] = result.get("worker_rss_mb", math.nan)
        values.update(system_metrics(result))  # system/...: the UI's System metrics tab
        # PBT's explored params, as the trial trained this epoch with them (its config may already
        # hold the next clone's: Tune changes it while the epoch after a step still runs).
        explored = {k: float(v) for k, v in result.items() if k.startswith(EXPLORED_PREFIX)}
        values.update(explored)
        if result.get(CLONED_FROM):
            self._cloned(trial, str(result[CLONED_FROM]), step, explored)
        if "node_id" in result:
            self.nodes.add(str(result["node_id"]))
        if result["training_iteration"] == 1:  # fixed by the architecture and the placement: logged once per start
            values.update({k: result[k] for k in ("params", "flops", "files_decoded") if k in result})
            self.tracker.set_tags(
                self.run_ids[trial.trial_id],
                {f"sweeps.{k}": str(result[k]) for k in ("node", "node_id", "device") if k in result},
            )
        self.tracker.log_metrics(self.run_ids[trial.trial_id], values, step=step)

    def record_infeasible(self, ot_trial: optuna.Trial, config: dict[str, Any], rejected: Rejection) -> None:
        """An infeasible proposal's MLflow run, as an infeasible trial's always was (ended KILLED,
        sweeps.state INFEASIBLE, its reason), though it is never trained nor counted."""
        tags = {"optuna.trial_number": str(ot_trial.number), **baseline_tags(ot_trial)}
        run_id = self.tracker.start_trial(f"trial-{ot_trial.number:03d}", trial_params(config), tags)
        ot_trial.set_user_attr("mlflow_run_id", run_id)
        self.tracker.end_trial(
            run_id,
            RunStatus(RUN_STATUS[Outcome.INFEASIBLE]),
            {
                "sweeps.state": Outcome.INFEASIBLE.value,
                "sweeps.epochs": "0",
                "sweeps.infeasible_reason": rejected.reason,
                "sweeps.infeasible_kind": rejected.kind,
                "sweeps.redrawn": "true (never trained, not counted in n_trials)",
            },
        )
        self.progress.redrawn(rejected.reason)

    def _cloned(self, trial: Any, source: str, step: int, explored: dict[str, float]) -> None:
        """PBT's exploit, recorded on the trial's run: which trial it cloned, from which epoch, with
        which explored values (the time series pbt/<param> holds them epoch by epoch)."""
        values = ", ".join(f"{k.removeprefix(EXPLORED_PREFIX)}={v:.6g}" for k, v in explored.items())
        source_run = self.run_ids.get(source, "?")
        self.clones.setdefault(trial.trial_id, []).append(
            f"epoch {step}: went on from trial {source} (run {source_run}) at epoch {step - 1}, {values}"
        )
        run_id = self.run_ids[trial.trial_id]
        self.tracker.set_tags(
            run_id,
            {"sweeps.pbt_clones": "; ".join(self.clones[trial.trial_id])[:5000], "sweeps.pbt_last_clone_of": source_run},
        )

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        # Where the best epoch's model lies (each checkpoint holds the trial's best epoch so far), for the summary
        # of this run or of a later resume; recorded while the Optuna trial is still open.
        ot_trial = self.search.optuna_trial(trial.trial_id)
        if ot_trial is not None:
            ot_trial.set_user_attr("checkpoint", str(Path(checkpoint.path) / MODEL_FILE))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id:
            self.tracker.set_tags(run_id, {"sweeps.retries": str(trial.num_failures)})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, trial_outcome(trial.last_result, error=False))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, Outcome.FAILED)

    def _finish(self, trial: Any, outcome: Outcome) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None or trial.trial_id in self.outcomes:
            return
        self.outcomes[trial.trial_id] = outcome
        tags = {
            "sweeps.state": outcome.value,
            "sweeps.epochs": str(trial.last_result.get(EPOCH, trial.last_result.get("training_iteration", 0))),
        }
        error_text = None
        if outcome is Outcome.INFEASIBLE:
            tags["sweeps.infeasible_reason"] = str(trial.last_result[INFEASIBLE])
        if outcome is Outcome.FAILED:
            error_text = str(trial.last_result.get(FAILED_ERROR) or "") or _error_text(trial)
            last_line = error_text.strip().splitlines()[-1] if error_text.strip() else "unknown error"
            tags["sweeps.error"] = last_line[:500]
            tags["sweeps.error_type"] = last_line.split(":", 1)[0][:200]
        self.tracker.end_trial(run_id, RunStatus(RUN_STATUS[outcome]), tags, error=error_text)
        value = trial.last_result.get(self.first_key) if outcome is Outcome.COMPLETE else None
        self.progress.trial_finished(outcome.value, tags.get("sweeps.error") or tags.get("sweeps.infeasible_reason", ""), value)
        faults.at_driver(ended=len(self.outcomes))


class WarmDriverImport(tune.Callback):
    """Imports Keras in the driver, in the background, once the first epoch is reported.

    The best model is logged after the sweep, with Keras loaded in the driver; imported only then,
    TensorFlow adds 2-7 s to the end of every sweep. After the first result the workers' own
    imports are done, so this one competes with no start-up.
    """

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"thread": None}  # Tune pickles callbacks with its experiment state

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self.thread is None:
            self.thread = threading.Thread(
                target=importlib.import_module, args=("models.conv2d",), name="warm-keras", daemon=True
            )
            self.thread.start()


def _error_text(trial: Any) -> str:
    path = trial.error_file
    if path and Path(path).is_file():
        return Path(path).read_text(errors="replace")
    return "the trial's worker died without leaving an error file"


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


def slots(cfg: SweepConfig, cluster_cpus: float) -> int:
    """How many trials run at once: the CPUs Ray has over the CPUs a trial takes."""
    return max(1, int(cluster_cpus // cfg.resources.cpus_per_trial))


# The schedulers of sweeps.registry.SCHEDULERS: each entry names its factory here (Ray is imported
# only in this module) and, when it stops trials early, the epochs where it may stop or pause one
# (the trial then goes on from its newest checkpoint, so one must be written at that epoch).


def asha(cfg: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr=EPOCH,
        max_t=cfg.max_epochs,  # a continued trial's clock goes on from its checkpoint
        grace_period=cfg.scheduler.grace_period,
        reduction_factor=cfg.scheduler.reduction_factor,
    )


def asha_rungs(cfg: SweepConfig) -> frozenset[int]:
    """ASHA decides at the first result at or past each rung: grace * rf^k below max_t."""
    rungs, milestone = set(), cfg.scheduler.grace_period
    while milestone < cfg.max_epochs:
        rungs.add(math.ceil(milestone))
        milestone *= cfg.scheduler.reduction_factor
    return frozenset(rungs)


def hyperband(cfg: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(time_attr=EPOCH, max_t=cfg.max_epochs, reduction_factor=cfg.scheduler.reduction_factor)


def hyperband_pauses(cfg: SweepConfig) -> frozenset[int]:
    return hyperband_milestones(cfg.max_epochs, cfg.scheduler.reduction_factor)


def hyperband_milestones(max_t: int, eta: int) -> frozenset[int]:
    """Where Tune's (synchronous) HyperBand halts a trial: every bracket s starts at
    r0 = int(max_t * eta^-s) and multiplies its milestone by eta (capped at max_t) at each halving;
    there a trial is paused until its bracket is done, then stopped or resumed (as Tune's
    `HyperBandScheduler` and `_Bracket.successive_halving` compute them)."""
    s_max_1 = int(round(math.log(max_t) / math.log(eta))) + 1
    milestones: set[int] = set()
    for s in range(s_max_1):
        r = int(max_t * eta ** (-s))
        if r == 0:
            continue
        for _ in range(s + 1):
            milestones.add(min(r, max_t))
            r = int(min(r * eta, max_t))
    return frozenset(m for m in milestones if m < max_t)


def median(cfg: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(
        time_attr=EPOCH, grace_period=cfg.scheduler.grace_period, min_samples_required=cfg.scheduler.min_samples
    )


def from_grace(cfg: SweepConfig) -> frozenset[int]:
    """The median rule may stop a trial at any result once it is grace_period epochs old."""
    return frozenset(range(cfg.scheduler.grace_period, cfg.max_epochs))


@dataclass(frozen=True)
class _KeepInside:
    """PBT's explore step multiplies a value by 0.8 or 1.2: the result is kept inside the space."""

    bounds: dict[str, tuple[float, float]]

    def __call__(self, config: dict) -> dict:
        member = config[MEMBER]
        inside = {k: min(max(float(member[k]), lo), hi) for k, (lo, hi) in self.bounds.items() if k in member}
        return {**config, MEMBER: {**member, **inside}}


class _PBT(PopulationBasedTraining):
    """Tune's PBT, which perturbs at any result: not at a trial's last one (its function has
    returned; a clone would train no epoch with the config it was given)."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get(FINISHED):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def pbt(cfg: SweepConfig) -> TrialScheduler:
    from sweeps.config import pbt_mutations

    mutations = pbt_mutations(cfg.space)
    return _PBT(
        time_attr=EPOCH,
        perturbation_interval=cfg.scheduler.perturbation_interval,
        quantile_fraction=cfg.scheduler.quantile_fraction,
        hyperparam_mutations={
            MEMBER: {k: (tune.loguniform if d.log else tune.uniform)(d.low, d.high) for k, d in mutations.items()}
        },
        custom_explore_fn=_KeepInside({k: (d.low, d.high) for k, d in mutations.items()}),
    )


def pbt_steps(cfg: SweepConfig) -> frozenset[int]:
    """Where PBT may clone a trial (or pause it for another member): every perturbation_interval epochs."""
    return frozenset(range(cfg.scheduler.perturbation_interval, cfg.max_epochs, cfg.scheduler.perturbation_interval))


def fifo(cfg: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def make_scheduler(cfg: SweepConfig) -> TrialScheduler:
    """As Ray Tune's `create_scheduler`: the registry's factory, imported now."""
    return SCHEDULERS[cfg.scheduler.name].load()(cfg)


def stop_epochs(cfg: SweepConfig) -> frozenset[int]:
    """The epochs after which the sweep's scheduler may stop or pause a trial, and the last epoch:
    where a trial writes its checkpoint after an improvement. A scheduler that declares it never
    stops trials early (sweeps.registry) adds none, whatever Tune class it builds."""
    return frozenset(e for e in SCHEDULERS[cfg.scheduler.name].epochs("stop", cfg) if 0 < e < cfg.max_epochs) | {cfg.max_epochs}


def pause_epochs(cfg: SweepConfig) -> frozenset[int]:
    """Epochs after which the scheduler may pause a trial: a checkpoint is written there always."""
    return frozenset(e for e in SCHEDULERS[cfg.scheduler.name].epochs("pause", cfg) if 0 < e < cfg.max_epochs)


@contextlib.contextmanager
def _without_api_server() -> Iterator[None]:
    """Ray 2.60 starts its dashboard process even with include_dashboard=False (the usage-stats
    module alone, no frontend), and `ray.init` polls until that process has written its address:
    a Python process importing aiohttp and the dashboard's modules on the critical path of every
    local sweep, competing for a small machine's cores (docs/performance.md has its measurement). A local
    sweep uses nothing it serves (no dashboard, job or state API), so `ray.init` starts it not.
    A cluster started by `ray start` keeps its own. Ray's private Node.start_api_server: where a
    Ray upgrade removes it, nothing is skipped."""
    from ray._private import node

    original = getattr(node.Node, "start_api_server", None)
    if original is None:
        yield
        return

    def skip(self: Any, *, include_dashboard: bool | None, raise_on_failure: bool) -> None:
        self._webui_url = ""  # as a minimal Ray install leaves it

    node.Node.start_api_server = skip
    try:
        yield
    finally:
        node.Node.start_api_server = original


def start_ray(cfg: SweepConfig) -> dict[str, float]:
    """Start (or join, with RAY_ADDRESS) Ray and check that one trial's resources exist at all,
    so a sweep asking for GPUs on a machine without any says so instead of waiting forever."""
    if not cfg.verbose:
        # Errors of trials stopped by the failure limit: already recorded, not worth a traceback.
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    on_cluster = bool(os.environ.get("RAY_ADDRESS"))
    if not ray.is_initialized():
        skipped = contextlib.nullcontext() if on_cluster else _without_api_server()
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore", **WORKER_ENV}
        env.update({k: os.environ[k] for k in (faults.ENV, faults.ENV_DIR) if k in os.environ})
        with skipped:
            ray.init(
                # "local": our own instance even when `ray start` left a cluster on this machine, which a
                # bare ray.init() would join (found in /tmp/ray/ray_current_cluster). Clusters: RAY_ADDRESS.
                address=None if on_cluster else "local",
                num_cpus=None if on_cluster else cfg.resources.num_cpus,
                include_dashboard=False,
                log_to_driver=cfg.verbose,
                logging_level="INFO" if cfg.verbose else "ERROR",
                # On a cluster the job's runtime env (its working_dir) must stay the driver's: a new one
                # here would drop the job's reference to that folder, and Ray would delete it under us.
                runtime_env=None if on_cluster else {"env_vars": env},
            )
    if not cfg.verbose:
        # A failed trial's traceback goes to its MLflow run; the terminal gets one progress line.
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    total = ray.cluster_resources()
    if on_cluster:
        _check_shared_output(cfg)
        return total  # a cluster's autoscaler may add the nodes a trial needs: let Tune wait for them
    for kind, field_name, wanted in (
        ("CPU", "cpus_per_trial", cfg.resources.cpus_per_trial),
        ("GPU", "gpus_per_trial", cfg.resources.gpus_per_trial),
    ):
        have = total.get(kind, 0.0)
        if wanted > have:
            shutdown()
            raise ConfigError(
                f"resources.{field_name}",
                f"a trial asks for {wanted:g} {kind} but the Ray cluster has {have:g}",
                f"set resources.{field_name}={have:g} or less"
                + (" (resources=cpu), or add GPU nodes to the cluster" if kind == "GPU" else ""),
            )
    return total


def _sees(paths: list[str]) -> tuple[str, list[str]]:
    import socket

    return socket.gethostname(), [p for p in paths if not os.path.isfile(p)]


def check_nodes_see(paths: list[str], folder: str) -> None:
    """Streamed data is read by every node that runs trials: ask each live node, before any trial,
    whether it sees `paths` (a few files of the folder); bad input, with the fix, if one does not."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_sees)
    nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]
    answers = ray.get(
        [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(paths) for node in nodes]
    )
    blind = [(host, missing) for host, missing in answers if missing]
    if blind:
        host, missing = blind[0]
        shutdown()
        raise ConfigError(
            "dataset.path",
            f"node {host} cannot see {missing[0]} ({len(blind)} of {len(nodes)} nodes cannot read {folder})",
            "put the folder on storage every node mounts (NFS, EFS, a FUSE bucket mount) at the same path, "
            "or raise dataset.memory_limit_mb so the driver loads it and sends the arrays",
        )


# A reused worker must wait for a trial that ASHA stopped to finish its current epoch before it
# takes the next trial; Tune's default wait is 2 s, after which the next trial errors and Tune
# 2.60 then hangs (its searcher never hears of that trial). An epoch on a loaded machine takes longer.
WORKER_ENV = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "600"}

NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "ceph", "glusterfs", "9p", "efs")


def _filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path` (longest mount point in /proc/mounts)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    target = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if (
            len(fields) >= 3
            and (target == fields[1] or target.startswith(fields[1].rstrip("/") + "/"))
            and len(fields[1]) > len(best)
        ):
            best, kind = fields[1], fields[2]
    return kind


def _check_shared_output(cfg: SweepConfig) -> None:
    """Tune writes checkpoints to output_dir from every node: on several machines it must be shared."""
    hosts = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
    kind = _filesystem_type(cfg.output_dir)
    if len(hosts) > 1 and not (kind in NETWORK_FILESYSTEMS or kind.startswith("fuse")):
        raise ConfigError(
            "output_dir",
            f"{cfg.output_dir} is on a local {kind} filesystem, but the cluster spans {len(hosts)} machines",
            "set output_dir to a folder every node mounts (NFS, EFS, a FUSE bucket mount)",
        )


class FailureLimit(tune.Stopper):
    """Stops the whole sweep once failed trials pass max_failures or max_failure_rate."""

    def __init__(self, callback: TrackingCallback, max_failures: int | None, max_rate: float | None, min_trials: int = 4) -> None:
        self.callback, self.max_failures, self.max_rate, self.min_trials = callback, max_failures, max_rate, min_trials
        self.reason: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        outcomes = list(self.callback.outcomes.values())
        failed = sum(o is Outcome.FAILED for o in outcomes)
        if self.max_failures is not None and failed > self.max_failures:
            self.reason = f"{failed} trials failed, more than max_failures={self.max_failures}"
        elif self.max_rate is not None and len(outcomes) >= self.min_trials and failed / len(outcomes) > self.max_rate:
            self.reason = f"{failed} of {len(outcomes)} trials failed, more than max_failure_rate={self.max_rate:g}"
        return self.reason is not None


class GoalReached(tune.Stopper):
    """Ends the sweep once a trial completes having reached `stop_at` (the trial itself stops at that
    epoch, complete): trials still running stop early (PRUNED), the rest are never started."""

    def __init__(self, callback: TrackingCallback, metric: str, mode: str, goal: float | None) -> None:
        self.callback, self.metric, self.mode, self.goal = callback, metric, mode, goal
        self.reason: str | None = None
        self.trial_id: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        if (
            self.reason is None
            and result.get(FINISHED)
            and not result.get(INFEASIBLE)
            and not result.get(FAILED_ERROR)
            and self.metric in result
            and reached_goal(float(result[self.metric]), self.goal, self.mode)
        ):
            self.trial_id = trial_id
            self.reason = (
                f"stop_at reached: trial {trial_id} has {self.metric} = {float(result[self.metric]):.4g}"
                f" at epoch {result.get(EPOCH)} ({'>=' if self.mode == 'max' else '<='} {self.goal:g})"
            )
        return False

    def stop_all(self) -> bool:
        # Not at the result itself: Tune would stop that trial too, before its completion is
        # recorded (it would end NOT_RUN). Its function returns after this report; once the
        # callback has recorded it COMPLETE, the sweep ends.
        return self.trial_id is not None and self.trial_id in self.callback.outcomes


class Interrupted(tune.Stopper):
    """Ends the sweep at Tune's next step once the driver gets SIGINT or SIGTERM; a second signal
    raises at once. A KeyboardInterrupt raised wherever the driver happens to be inside Tune's loop
    can leave a lock held (a CI run hung there until SIGKILL, its parent run never ended), so the
    loop is stopped through Tune instead and `run_sweep` raises once it has returned. Trials still
    running are left RUNNING in Optuna and MLflow, as a kill leaves them, so `resume` continues them."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"signal {signum}")
        self.signum = signum

    def installed(self) -> dict[int, Any]:
        """Handle SIGINT and SIGTERM (main thread only); returns the handlers to put back."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def __getstate__(self) -> dict[str, Any]:
        return {"signum": None}  # Tune pickles its stoppers with the experiment state


def baseline_tags(ot_trial: optuna.Trial | None) -> dict[str, str]:
    """The MLflow tags of the baseline's run: it is the configured model, and what of it lies outside the space."""
    from sweeps.space import OUTSIDE_ATTR

    if ot_trial is None or not ot_trial.user_attrs.get(BASELINE_ATTR):
        return {}
    outside = ot_trial.user_attrs.get(OUTSIDE_ATTR) or {}
    return {
        "sweeps.baseline": "true (the configured model, evaluated first)",
        **({"sweeps.baseline_outside_space": json.dumps(outside, sort_keys=True)[:5000]} if outside else {}),
    }


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
    from sweeps.warmstart import RERUN_ATTR

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
    trials (sweeps.warmstart), added to a fresh study before its first proposal; `rerun`: (label,
    params) of its best, evaluated first after warm_start.points (first_points)."""
    started = time.monotonic()
    start_ray(cfg)
    # Read from memory and written behind: the driver is the study's one writer (sweeps.studystore).
    storage = driver_storage(open_storage(cfg.output_dir, cfg.tracking.study_storage))
    metrics = [m for m, _ in cfg.objectives]
    modes = [d for _, d in cfg.objectives]
    # Warm-start points go first, once: a resumed sweep's study has them already.
    fresh = cfg.name not in optuna.study.get_all_study_names(storage)
    scheduler = make_scheduler(cfg)
    n = n_trials or cfg.n_trials
    points = [dict(p) for p in cfg.warm_start.points] if fresh else []
    baseline = baseline_point(cfg.model, cfg.space) if cfg.baseline and fresh else None
    proposer = Proposer(
        model=dict(cfg.model),
        fixed=dict(cfg.space.fixed),
        input_shape=settings.input_shape,
        num_classes=settings.num_classes,
        max_params=cfg.space.max_params,
        max_flops=cfg.space.max_flops,
        redraws=Redraws(cfg.max_infeasible_in_a_row, describe_space(cfg.space.searched)),
    )
    search: SweepSearch | Population
    if isinstance(scheduler, PopulationBasedTraining):  # it refuses a searcher: its own population
        from sweeps.config import pbt_mutations

        explored = tuple(pbt_mutations(cfg.space))
        study = optuna.create_study(
            study_name=cfg.name,
            storage=storage,
            sampler=make_sampler(cfg.sampler, cfg.seed),  # random (sweeps.config): see Population
            directions=["maximize" if m == "max" else "minimize" for m in modes],
            load_if_exists=True,
        )
        if fresh:
            first_points(study, points, rerun, warm_start, baseline)
        search = Population(
            study, define_by_run(cfg.space, cfg.model), n, [objective_key(m) for m in metrics], explored, proposer
        )
        search_alg: Any = None  # Tune's own, over the population as one grid of whole configs
        param_space = {MEMBER: tune.grid_search(search.configs)}
        print(
            f"scheduler=pbt: a population of {n} sampled at random from the space (seed {cfg.seed}); every"
            f" {cfg.scheduler.perturbation_interval} epochs the worst clone the best and explore {', '.join(explored)}"
            " (Tune's PBT refuses a searcher, so no sampler learns from the trials)",
            file=progress.out,
            flush=True,
        )
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
            first_points(search._ot_study, points, rerun, warm_start, baseline)
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
                KeepBestCheckpoints(cfg.resources.keep_checkpoints, cfg.metric, cfg.mode, callback, newest_only=not explored),
                JsonLoggerCallback(),
                CSVLoggerCallback(),
                *([warm] if warm is not None else []),
            ],
            verbose=2 if cfg.verbose else 0,
            # One checkpoint per trial, its newest (KeepBestCheckpoints.on_checkpoint), except under PBT,
            # which clones a member's checkpoint of its last perturbation: a newer one must not delete it.
            # Tune's own num_to_keep forces a snapshot of the whole experiment at each checkpoint.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if explored else None),
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
        study=search._ot_study,
        run_ids=dict(callback.run_ids),
        wall_time_s=time.monotonic() - started,
        stopped_because=limit.reason,
        goal_reached=goal.reason,
        data_bytes=sum(int(getattr(a, "nbytes", 0)) for a in data.values()),
        data_nodes=len(callback.nodes),
    )


_stopping: threading.Thread | None = None


def release() -> None:
    """Start shutting Ray down in the background once the trials are over: stopping its processes
    takes ~1.3 s, and the summary and report that follow need no Ray. `shutdown` waits for it."""
    global _stopping
    if ray.is_initialized() and _stopping is None:
        _stopping = threading.Thread(target=ray.shutdown, name="ray-shutdown")
        _stopping.start()


def shutdown() -> None:
    global _stopping
    if _stopping is not None:
        _stopping.join()
        _stopping = None
    elif ray.is_initialized():
        ray.shutdown()
