"""Make Optuna and MLflow agree after a sweep stopped uncleanly (driver killed, trials never run).

A resumed sweep continues its interrupted trials (still RUNNING in Optuna: the driver that ran them
is dead, and no other may run the sweep) from their last whole checkpoint, as themselves. Every
other Optuna trial still RUNNING is told FAIL and labelled; every MLflow trial run still RUNNING is
ended with the state Optuna holds; a trial Optuna proposed but MLflow never saw gets a run, so both
stores count the same trials in the same states.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import optuna

from sweeps.core.outcomes import COUNTED, RUN_STATUS, Outcome, outcome_of
from sweeps.core.protocol import EPOCH
from sweeps.core.records import CHECKPOINT_ATTR, OUTCOME_ATTR, RUN_ID_ATTR, STATE_TAG, TRIAL_DIR_ATTR
from sweeps.worker.snapshots import newest_snapshot, read_history
from tracking import RunStatus, SweepTracker, list_trial_runs, metric_histories
from tracking.query import RunRecord


@dataclass(frozen=True)
class Continuation:
    """An interrupted trial that a resumed sweep continues instead of drawing a new one."""

    number: int  # its Optuna trial number, kept
    run_id: str | None  # its MLflow run, kept (None: the driver died before creating it)
    checkpoint: str | None  # a whole snapshot's folder to go on from; None: from the first epoch
    epoch: int = 0  # the epoch that snapshot holds
    logged: int = 0  # the last epoch its run logged before the kill: logged - epoch are trained again
    missing: tuple[tuple[int, dict[str, float]], ...] = ()  # epochs the snapshot holds that its run lacks

    @property
    def redone(self) -> int:
        """Epochs that finished before the kill but that no snapshot held: the compute it lost."""
        return max(0, self.logged - self.epoch)


def last_snapshot(trial: optuna.trial.FrozenTrial) -> tuple[str | None, int]:
    """The newest whole checkpoint of a trial: the one the driver recorded, or a newer one its
    worker had already written to the trial's folder when the driver died."""
    folders = []
    if trial.user_attrs.get(CHECKPOINT_ATTR):
        folders.append(Path(trial.user_attrs[CHECKPOINT_ATTR]).parent)
    if trial.user_attrs.get(TRIAL_DIR_ATTR):
        folders += Path(trial.user_attrs[TRIAL_DIR_ATTR]).glob("checkpoint_*")
    folder, epoch = newest_snapshot(folders)
    return (str(folder) if folder is not None else None), epoch


def interrupted(study: optuna.Study, parent: RunRecord, tracking_uri: str, limit: int) -> list[Continuation]:
    """Up to `limit` trials left RUNNING by a dead driver, oldest first, with their last snapshots."""
    runs = {r.tags.get("optuna.trial_number"): r for r in list_trial_runs(tracking_uri, parent)}
    found = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))[: max(0, limit)]:
        run = runs.get(str(trial.number))
        checkpoint, epoch = last_snapshot(trial)
        steps = (
            {s for s, _ in metric_histories(tracking_uri, run.run_id, ("train_loss",))["train_loss"]}
            if run is not None
            else set()
        )
        # Epochs that finished and were saved in the worker while the driver, already dying, never got them.
        missing = tuple(
            (int(h[EPOCH]), {k: v for k, v in h.items() if k != EPOCH})
            for h in (read_history(Path(checkpoint)) if checkpoint else [])
            if int(h[EPOCH]) not in steps
        )
        found.append(
            Continuation(
                trial.number,
                run.run_id if run is not None else None,
                checkpoint,
                epoch,
                max(steps | {e for e, _ in missing}, default=0),
                missing,
            )
        )
    return found


_WHY = {
    Outcome.INTERRUPTED: "interrupted: the sweep's driver stopped while this trial ran, and the resumed sweep had no trials left to continue it",
    Outcome.NOT_RUN: "not run: proposed by the sampler, but the sweep ended (time budget or failure limit) before it started",
}


def reconcile(study: optuna.Study, tracker: SweepTracker, parent: RunRecord, label: Outcome, keep: Collection[int] = ()) -> int:
    """Close what was left open, except the trials numbered in `keep` (to be continued); returns
    how many trials were mended."""
    runs = {r.tags.get("optuna.trial_number"): r for r in list_trial_runs(tracker.tracking_uri, parent)}
    mended = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.number in keep:
            continue
        run = runs.get(str(trial.number))
        running = trial.state == optuna.trial.TrialState.RUNNING
        if not running and (run is None or run.status != "RUNNING"):
            continue
        if run is None:  # proposed, never started: give it a run while the trial can still take attrs
            run_id = tracker.start_trial(f"trial-{trial.number:03d}", trial.params, {"optuna.trial_number": str(trial.number)})
            study._storage.set_trial_user_attr(trial._trial_id, RUN_ID_ATTR, run_id)
        else:
            run_id = run.run_id
        if running:
            study._storage.set_trial_user_attr(trial._trial_id, OUTCOME_ATTR, label.value)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            outcome = label
        else:
            outcome = outcome_of(trial)  # Optuna heard the end; MLflow did not
        tags = {STATE_TAG: outcome.value}
        if outcome in _WHY:
            tags["sweeps.error"] = _WHY[outcome]
        tracker.end_trial(run_id, RunStatus(RUN_STATUS[outcome]), tags)
        mended += 1
    tracker.flush()  # the ends are queued (tracker.end_trial): in the store before anyone reads it
    return mended


def counted(study: optuna.Study) -> int:
    """Trials that used up the sweep's budget (running, interrupted and never-run ones do not)."""
    from sweeps.driver.warmstart import own_trials

    return sum(t.state.is_finished() and outcome_of(t) in COUNTED for t in own_trials(study.get_trials(deepcopy=False)))
