"""Tune callbacks of a sweep: each Tune trial mirrored into MLflow (driver side), checkpoint retention, Keras
warmed in the driver."""

from __future__ import annotations

import importlib
import json
import math
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from sweeps.core.metrics import EPOCH_METRICS
from sweeps.core.outcomes import RUN_STATUS, Outcome, trial_outcome
from sweeps.core.protocol import CLONED_FROM, EPOCH, EXPLORED_PREFIX, FAILED_ERROR, INFEASIBLE, MODEL_FILE, best_key, trial_params
from sweeps.core.records import (
    BASELINE_ATTR,
    CHECKPOINT_ATTR,
    OUTSIDE_ATTR,
    RUN_ID_ATTR,
    STATE_TAG,
    TRIAL_DIR_ATTR,
    TUNE_TRIAL_ATTR,
)
from sweeps.driver.checkpoints import BestCheckpoints
from sweeps.driver.progress import Progress
from sweeps.execution.search import is_baseline
from sweeps.testing import faults
from sweeps.worker.sysmetrics import system_metrics
from tracking import RunStatus, SweepTracker

if TYPE_CHECKING:
    from sweeps.execution.search import TrialRecords


class KeepBestCheckpoints(tune.Callback):
    """Keeps one checkpoint per trial, its newest, and deletes the checkpoints of finished trials
    outside the sweep's best k (sweeps.driver.checkpoints); a 1,000-trial sweep keeps k models, not 1,000.
    Failed, pruned and infeasible trials keep none.

    Under PBT (`pinned`: the scheduler's sweeps.schedulers.pbt.PBT.pinned) a checkpoint PBT handed
    to a clone, or may hand at its next exploit, is spared until PBT no longer names it, then
    deleted like any other: the clone restores it however far its source has trained since."""

    def __init__(
        self,
        keep: int | None,
        metric: str,
        mode: str,
        tracking: TrackingCallback,
        pinned: Callable[[], set[str]] | None = None,
    ) -> None:
        self.book, self.key, self.tracking = BestCheckpoints(keep, mode), best_key(metric), tracking
        self.pinned = pinned
        self.folders: dict[str, Path] = {}
        self.newest: dict[str, Path] = {}  # trial id -> its newest checkpoint (the one a kept trial keeps)
        self.spared: set[Path] = set()  # checkpoints that would have gone but were pinned: deleted once not
        self.metric = metric

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.folders[trial.trial_id] = Path(trial.storage.trial_fs_path)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        complete = trial_outcome(trial.last_result, error=False) is Outcome.COMPLETE
        value = trial.last_result.get(self.key) if complete else None
        dropped = self._finished(trial.trial_id, value)  # every finished trial, complete or not
        if complete and trial.trial_id not in dropped:
            self._kept(trial, float(value))
        self._release()

    def _kept(self, trial: Any, value: float) -> None:
        """A kept checkpoint: a logged model once the search ends (tracking.models), unless dropped first."""
        run_id, checkpoint = self.tracking.run_ids.get(trial.trial_id), self.newest.get(trial.trial_id)
        ot_trial = self.tracking.search.optuna_trial(trial.trial_id)
        if run_id and checkpoint is not None and ot_trial is not None:
            params = trial_params(trial.config)
            self.tracking.tracker.log_checkpoint(run_id, ot_trial.number, checkpoint, params, self.metric, value)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial.trial_id, None)
        self._release()

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        # A trial's newest checkpoint holds its best epoch so far and is what a retry, a resume or
        # PBT goes on from: the older ones go. (Tune's own CheckpointConfig(num_to_keep) would do
        # this, but forces a snapshot of the whole experiment's state, every trial's, at each
        # checkpoint: quadratic in the trials, and the product resumes from its own records. Nor
        # does it know PBT: it deleted the checkpoint a clone was handed once the source had saved
        # num_to_keep newer ones, before a clone that started late had restored it.)
        newest = Path(checkpoint.path)
        previous = self.newest.get(trial.trial_id)
        self.newest[trial.trial_id] = newest
        if self.pinned is None:
            for older in newest.parent.glob("checkpoint_*"):
                if older != newest:
                    shutil.rmtree(older, ignore_errors=True)
            return
        # Under PBT the older one may be what a clone was handed: it goes only once no pin holds it.
        if previous is not None and previous != newest:
            self.spared.add(previous)
        self._release()

    def _release(self) -> None:
        """Deletes the spared checkpoints that nothing pins any longer (nor is a trial's newest)."""
        if self.pinned is None or not self.spared:
            return
        held = {Path(p) for p in self.pinned()} | set(self.newest.values())
        for checkpoint in sorted(self.spared - held):
            shutil.rmtree(checkpoint, ignore_errors=True)
            self.spared.discard(checkpoint)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._release()  # every trial is over: no clone is left to restore a pinned one

    def _finished(self, trial_id: str, value: float | None) -> list[str]:
        gone = self.book.finished(trial_id, value)
        pinned = {Path(p) for p in self.pinned()} if self.pinned is not None else set()
        for dropped in gone:
            folder = self.folders.get(dropped)
            if folder is None or is_baseline(self.tracking.search, dropped):
                continue  # the baseline's model is kept: the summary test-scores it beside the champion
            self.newest.pop(dropped, None)
            for checkpoint in folder.glob("checkpoint_*"):
                if checkpoint in pinned:  # PBT handed it to a clone that has not saved since
                    self.spared.add(checkpoint)
                else:
                    shutil.rmtree(checkpoint, ignore_errors=True)
            run_id = self.tracking.run_ids.get(dropped)
            if run_id:
                self.tracking.tracker.set_tags(
                    run_id, {"sweeps.checkpoint": "deleted: not among the sweep's best resources.keep_checkpoints"}
                )
                self.tracking.tracker.drop_checkpoint(run_id)
        return gone


class TrackingCallback(tune.Callback):
    """Mirrors every Tune trial into a nested MLflow run, from the driver process."""

    def __init__(
        self,
        tracker: SweepTracker,
        search: TrialRecords,
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
            ot_trial.set_user_attr(RUN_ID_ATTR, run_id)
            ot_trial.set_user_attr(TUNE_TRIAL_ATTR, trial.trial_id)
            if trial.path:  # where its checkpoints go, for a resume that finds no checkpoint attr
                ot_trial.set_user_attr(TRIAL_DIR_ATTR, str(trial.path))

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

    def record_infeasible(self, ot_trial: Any, config: dict[str, Any], rejected: Any) -> None:
        """An infeasible proposal's MLflow run, as an infeasible trial's always was (ended KILLED,
        sweeps.state INFEASIBLE, its reason), though it is never trained nor counted
        (sweeps.samplers.feasibility)."""
        tags = {"optuna.trial_number": str(ot_trial.number), **baseline_tags(ot_trial)}
        run_id = self.tracker.start_trial(f"trial-{ot_trial.number:03d}", trial_params(config), tags)
        ot_trial.set_user_attr(RUN_ID_ATTR, run_id)
        self.tracker.end_trial(
            run_id,
            RunStatus(RUN_STATUS[Outcome.INFEASIBLE]),
            {
                STATE_TAG: Outcome.INFEASIBLE.value,
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
            ot_trial.set_user_attr(CHECKPOINT_ATTR, str(Path(checkpoint.path) / MODEL_FILE))

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
            STATE_TAG: outcome.value,
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


class ForgetFinished(tune.Callback):
    """Drops what Tune keeps of a finished trial that no one reads: its running statistics of every
    numeric key it reported (`metric_analysis`: max, min, mean, and the means of the last 5 and 10
    values, each in its own deque), some 55 KB a trial, the driver's largest grower
    (docs/performance.md, the driver's memory). Tune reads them only in ExperimentAnalysis's best
    trial, which the product never asks for: its best is Optuna's, its values MLflow's. The
    trial's last result stays (Tune's ResultGrid and the callbacks read it).

    Listed after the other callbacks, so each has read the finished trial first; Tune writes the
    trial's state into its experiment snapshot after these calls, without the statistics."""

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._forget(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._forget(trial)

    @staticmethod
    def _forget(trial: Any) -> None:
        # Assigned, not cleared in place: _TrainingRunMetadata drops its cached JSON on assignment.
        trial.run_metadata.metric_analysis = {}
        trial.run_metadata.metric_n_steps = {}


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


def baseline_tags(ot_trial: Any) -> dict[str, str]:
    """The MLflow tags of the baseline's run: it is the configured model, and what of it lies outside the space."""
    if ot_trial is None or not ot_trial.user_attrs.get(BASELINE_ATTR):
        return {}
    outside = ot_trial.user_attrs.get(OUTSIDE_ATTR) or {}
    return {
        "sweeps.baseline": "true (the configured model, evaluated first)",
        **({"sweeps.baseline_outside_space": json.dumps(outside, sort_keys=True)[:5000]} if outside else {}),
    }
