"""What happened to a trial: one vocabulary shared by the runner, Optuna, MLflow and the summary.

Pure: imports only sweeps.core's protocol keys (the tracker and the report read the vocabulary too), so
the recovery path can use it without Ray.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from sweeps.core.protocol import FAILED_ERROR, FINISHED, INFEASIBLE
from sweeps.core.records import OUTCOME_ATTR


class Outcome(str, Enum):
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"  # stopped early by the scheduler or the time budget
    INFEASIBLE = "INFEASIBLE"  # rejected before training (shape, strides with dilation, budget)
    FAILED = "FAILED"  # raised, or its worker died more often than max_retries
    INTERRUPTED = "INTERRUPTED"  # running when the sweep's driver died; recorded on resume
    NOT_RUN = "NOT_RUN"  # proposed by Optuna but never started (time budget, failure limit)


# How a reader says each outcome, in the order a reader wants: what worked, what was stopped, what broke.
WORDS = {
    Outcome.COMPLETE: "completed",
    Outcome.PRUNED: "stopped early",
    Outcome.INFEASIBLE: "infeasible",
    Outcome.FAILED: "failed",
    Outcome.INTERRUPTED: "interrupted",
    Outcome.NOT_RUN: "not run",
}

# MLflow run status of each outcome.
RUN_STATUS = {
    Outcome.COMPLETE: "FINISHED",
    Outcome.PRUNED: "KILLED",
    Outcome.INFEASIBLE: "KILLED",
    Outcome.FAILED: "FAILED",
    Outcome.INTERRUPTED: "FAILED",
    Outcome.NOT_RUN: "KILLED",
}

# Outcomes that used up one of the sweep's n_trials; the others are run again on resume.
COUNTED = (Outcome.COMPLETE, Outcome.PRUNED, Outcome.INFEASIBLE, Outcome.FAILED)


def trial_outcome(last_result: dict[str, Any] | None, error: bool) -> Outcome:
    """What happened to a trial, from its last report: the single rule for Optuna and MLflow."""
    if error or (last_result and last_result.get(FAILED_ERROR)):
        return Outcome.FAILED  # raised; or failed in a way a retry cannot help, reported instead
    if not last_result or FINISHED not in last_result:
        return Outcome.PRUNED  # stopped before its first report
    if last_result.get(INFEASIBLE):
        return Outcome.INFEASIBLE
    return Outcome.COMPLETE if last_result[FINISHED] else Outcome.PRUNED


def outcome_of(trial: Any) -> Outcome:
    """The outcome of a finished Optuna trial (a `FrozenTrial`): the label the sweep gave it (Optuna
    cannot say INFEASIBLE, INTERRUPTED or NOT_RUN), else its Optuna state; a FAIL is FAILED."""
    label = trial.user_attrs.get(OUTCOME_ATTR)
    if label in Outcome.__members__:
        return Outcome(label)
    return {"COMPLETE": Outcome.COMPLETE, "PRUNED": Outcome.PRUNED}.get(trial.state.name, Outcome.FAILED)


def state_name(trial: Any) -> str:
    """What a table shows for a trial: its outcome once finished, else Optuna's state (RUNNING, WAITING)."""
    return outcome_of(trial).value if trial.state.is_finished() else trial.state.name
