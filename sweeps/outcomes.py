"""What happened to a trial: one vocabulary shared by the runner, Optuna, MLflow and the summary.

Pure: imports nothing heavy, so the recovery path can use it without Ray.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from sweeps.trial import FAILED_ERROR, FINISHED, INFEASIBLE


class Outcome(str, Enum):
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"  # stopped early by the scheduler or the time budget
    INFEASIBLE = "INFEASIBLE"  # rejected before training (shape, strides with dilation, budget)
    FAILED = "FAILED"  # raised, or its worker died more often than max_retries
    INTERRUPTED = "INTERRUPTED"  # running when the sweep's driver died; recorded on resume
    NOT_RUN = "NOT_RUN"  # proposed by Optuna but never started (time budget, failure limit)


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
