"""Make Optuna and MLflow agree after a sweep stopped uncleanly (driver killed, trials never run).

Every Optuna trial still RUNNING is told FAIL and labelled; every MLflow trial run still RUNNING is
ended with the state Optuna holds; a trial Optuna proposed but MLflow never saw gets a run, so both
stores count the same trials in the same states.
"""

from __future__ import annotations

import optuna

from sweeps.outcomes import COUNTED, RUN_STATUS, Outcome
from tracking import RunStatus, SweepTracker, list_trial_runs
from tracking.query import RunRecord

_WHY = {
    Outcome.INTERRUPTED: "interrupted: the sweep's driver stopped while this trial ran; resume ran a new trial instead",
    Outcome.NOT_RUN: "not run: proposed by the sampler, but the sweep ended (time budget or failure limit) before it started",
}


def outcome_of(trial: optuna.trial.FrozenTrial) -> Outcome:
    label = trial.user_attrs.get("outcome")
    if label in Outcome.__members__:
        return Outcome(label)
    return {"COMPLETE": Outcome.COMPLETE, "PRUNED": Outcome.PRUNED}.get(trial.state.name, Outcome.FAILED)


def reconcile(study: optuna.Study, tracker: SweepTracker, parent: RunRecord, label: Outcome) -> int:
    """Close what was left open; returns how many trials were mended."""
    runs = {r.tags.get("optuna.trial_number"): r for r in list_trial_runs(tracker.tracking_uri, parent)}
    mended = 0
    for trial in study.get_trials(deepcopy=False):
        run = runs.get(str(trial.number))
        running = trial.state == optuna.trial.TrialState.RUNNING
        if not running and (run is None or run.status != "RUNNING"):
            continue
        if run is None:  # proposed, never started: give it a run while the trial can still take attrs
            run_id = tracker.start_trial(f"trial-{trial.number:03d}", trial.params, {"optuna.trial_number": str(trial.number)})
            study._storage.set_trial_user_attr(trial._trial_id, "mlflow_run_id", run_id)
        else:
            run_id = run.run_id
        if running:
            study._storage.set_trial_user_attr(trial._trial_id, "outcome", label.value)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            outcome = label
        else:
            outcome = outcome_of(trial)  # Optuna heard the end; MLflow did not
        tags = {"sweeps.state": outcome.value}
        if outcome in _WHY:
            tags["sweeps.error"] = _WHY[outcome]
        tracker.end_trial(run_id, RunStatus(RUN_STATUS[outcome]), tags)
        mended += 1
    return mended


def counted(study: optuna.Study) -> int:
    """Trials that used up the sweep's budget (interrupted and never-run ones do not)."""
    return sum(outcome_of(t) in COUNTED for t in study.get_trials(deepcopy=False))
