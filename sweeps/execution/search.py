"""The searcher: OptunaSearch telling Optuna the truth (one tell, sweeps.samplers.tell), and the interface the
callbacks read a searcher through (`TrialRecords`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import optuna
from ray.tune.search.optuna import OptunaSearch

from sweeps.core.errors import ConfigError
from sweeps.core.protocol import CONTINUES, EPOCH, FAILED_ERROR, INFEASIBLE
from sweeps.core.records import BASELINE_ATTR
from sweeps.samplers.factories import exhausted
from sweeps.samplers.feasibility import Proposer
from sweeps.samplers.tell import tell
from sweeps.testing import faults

if TYPE_CHECKING:
    from sweeps.driver.recovery import Continuation


class TrialRecords(Protocol):
    """What the callbacks and `run_sweep` read from a sweep's search (SweepSearch, or PBT's Population):
    the Optuna trial of a Tune trial, the interrupted trials it continues, and its study."""

    continued: dict[str, Continuation]  # tune trial id -> what it continues (a resumed sweep's)

    def optuna_trial(self, trial_id: str) -> optuna.Trial | None: ...

    @property
    def study(self) -> optuna.Study: ...


def is_baseline(search: TrialRecords, trial_id: str) -> bool:
    """Whether Tune trial `trial_id` evaluates the sweep's baseline (the configured model)."""
    ot_trial = search.optuna_trial(trial_id)
    return ot_trial is not None and bool(ot_trial.user_attrs.get(BASELINE_ATTR))


class SweepSearch(OptunaSearch):
    """OptunaSearch that tells Optuna the truth: early-stopped trials PRUNED, errors FAIL, the
    objective = the best epoch's value (the checkpoint that is kept), infeasible trials PRUNED with
    no intermediate value so TPE ranks them worst and learns to avoid them. Interrupted trials of
    a resumed sweep are proposed first, as themselves: same Optuna trial, same params. Every other
    proposal is planned first (`proposer`, sweeps.samplers.feasibility): an infeasible one is
    recorded, told to the sampler and redrawn, never trained nor counted."""

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
        self.proposer = proposer
        self.error: ConfigError | None = None  # too many infeasible in a row: raised once Tune has stopped
        self._to_continue = list(continuations)
        self.continued: dict[str, Continuation] = {}  # tune trial id -> what it continues
        self._last: dict[str, dict] = {}  # tune trial id -> its last result

    def optuna_trial(self, trial_id: str) -> optuna.Trial | None:
        return self._ot_trials.get(trial_id)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

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
        tell(self._ot_study, ot_trial, result, error, self._objective_keys)
        self._completed_trials.add(trial_id)
