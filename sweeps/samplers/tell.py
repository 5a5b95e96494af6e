"""The one tell: a finished Tune trial's last result -> its outcome, recorded on its Optuna trial and told.

Both searches of a sweep end their trials here: the searcher (sweeps.execution.search.SweepSearch) and PBT's
population (sweeps.schedulers.pbt.Population), so Optuna hears the same thing from either: early-stopped
trials PRUNED, errors FAIL, infeasible ones PRUNED with their reason, complete ones with the objective values
(the best epoch's, the checkpoint that is kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from sweeps.core.outcomes import Outcome, trial_outcome
from sweeps.core.protocol import INFEASIBLE
from sweeps.core.records import INFEASIBLE_ATTR, OUTCOME_ATTR


def tell(
    study: optuna.Study, ot_trial: optuna.Trial, result: dict[str, Any] | None, error: bool, objective_keys: Sequence[str]
) -> Outcome:
    """Decide the trial's outcome from its last result (sweeps.core.outcomes), record it and tell Optuna."""
    outcome = trial_outcome(result, error)
    ot_trial.set_user_attr(OUTCOME_ATTR, outcome.value)
    if outcome is Outcome.INFEASIBLE:
        ot_trial.set_user_attr(INFEASIBLE_ATTR, str(result[INFEASIBLE]))  # type: ignore[index]
    if outcome is Outcome.COMPLETE:
        values = [float(result[key]) for key in objective_keys]  # type: ignore[index]
        study.tell(ot_trial, values if len(values) > 1 else values[0])
    else:
        state = optuna.trial.TrialState.FAIL if outcome is Outcome.FAILED else optuna.trial.TrialState.PRUNED
        study.tell(ot_trial, state=state)
    return outcome
