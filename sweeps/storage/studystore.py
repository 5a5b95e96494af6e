"""The sweep driver's view of its study: every trial in memory, the database written behind.

Optuna's RDB storage serves processes that share a study, so each read goes back to the database
for every unfinished trial (with K trials running, K trials rebuilt from SQL per read, three reads
per ask), and each param, intermediate value and attribute is its own transaction. A sweep's study
has one writer, its driver (the sweep's `driver.lock` keeps a second one out; workers never touch
Optuna), so the driver can read its own copy and let one thread write the database in order.

What must be in the store before anything depends on it is written before the call returns: a new
trial (its number and id), every state change (a claimed enqueued trial, a tell) with the trial's
queued writes ahead of it. Params, intermediate values and attributes are queued: a driver killed
before they land leaves a RUNNING trial with fewer of them, which `resume` reconciles as it does a
trial killed between two epochs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sweeps.core.writebehind import WriteBehind


class DriverStudyStorage(_CachedStorage):
    """An RDB storage read from memory once loaded, written behind by one thread (module docstring).
    Other processes (a report, the dashboard) read the database and see these writes in order."""

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._loaded: set[int] = set()  # studies whose trials were read from the database once
        self.writes = WriteBehind("optuna-writer")  # keyed by trial id; a new trial by ("new", study id)

    # -- writes ----------------------------------------------------------------------------------------

    def _now(self, group: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Runs `fn` on the writer thread after what is queued for `group`, and waits for it."""
        self.writes.reap()
        done = self.writes.submit(group, fn, *args, **kwargs)
        self.writes.settle(group)
        return done.result()

    def _later(self, group: Any, fn: Any, *args: Any, **kwargs: Any) -> None:
        self.writes.reap()  # a store that refuses writes stops the sweep at the next one, not at the end
        self.writes.submit(group, fn, *args, **kwargs)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        self._loaded_first(study_id)
        frozen = self._now(("new", study_id), self._backend._create_new_trial, study_id, template_trial)
        with self._lock:  # the study is loaded: never read from the database again, so only the cache learns of it
            self._add_trials_to_cache(study_id, [frozen])
        return frozen._trial_id

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        if not self._owned(trial_id):
            return self._backend.set_trial_param(trial_id, param_name, param_value_internal, distribution)
        with self._lock:
            trial = self._updatable(trial_id)  # a refused write changes nothing, not even the study's distributions
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            known = self._studies[study_id].param_distribution.get(param_name)
            if known is not None:
                check_distribution_compatibility(known, distribution)
            else:
                self._studies[study_id].param_distribution[param_name] = distribution  # the first one, as Optuna's cache keeps
            trial.params = {**trial.params, param_name: distribution.to_external_repr(param_value_internal)}
            trial.distributions = {**trial.distributions, param_name: distribution}
            self._put(trial)
        self._later(trial_id, self._backend._set_trial_param, trial_id, param_name, param_value_internal, distribution, known)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        if not self._owned(trial_id):
            return self._backend.set_trial_state_values(trial_id, state=state, values=values)
        with self._lock:
            self._refuse_finished(trial_id)
        written, start, complete = self._now(trial_id, self._set_state_values, trial_id, state, values)
        if not written:
            return False  # a WAITING trial another ask claimed first
        with self._lock:
            trial = self._updatable(trial_id)
            trial.state = state
            if values is not None:
                trial.values = list(values)
            trial.datetime_start, trial.datetime_complete = start, complete  # the database's own
            self._put(trial)
        return True

    def _set_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None
    ) -> tuple[bool, datetime | None, datetime | None]:
        """On the writer thread: the backend's write, then the trial's start and completion as the
        database now holds them. The backend stamps them with its own clock inside its transaction
        (and a database may store them coarser than Python does), so the copy in memory takes them
        from there, not from a `now()` of its own a moment later."""
        if not self._backend.set_trial_state_values(trial_id, state=state, values=values):
            return False, None, None
        with _create_scoped_session(self._backend.scoped_session) as session:
            row = models.TrialModel.find_or_raise_by_id(trial_id, session)
            return True, row.datetime_start, row.datetime_complete

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        if not self._owned(trial_id):
            return self._backend.set_trial_intermediate_value(trial_id, step, intermediate_value)
        with self._lock:
            trial = self._updatable(trial_id)
            trial.intermediate_values = {**trial.intermediate_values, step: intermediate_value}
            self._put(trial)
        self._later(trial_id, self._backend.set_trial_intermediate_value, trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr(trial_id, "user_attrs", key, value, self._backend.set_trial_user_attr)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr(trial_id, "system_attrs", key, value, self._backend.set_trial_system_attr)

    def _set_attr(self, trial_id: int, field: str, key: str, value: Any, write: Any) -> None:
        if not self._owned(trial_id):
            return write(trial_id, key, value)
        with self._lock:
            trial = self._updatable(trial_id)
            setattr(trial, field, {**getattr(trial, field), key: value})
            self._put(trial)
        self._later(trial_id, write, trial_id, key, value)
        return None

    def _owned(self, trial_id: int) -> bool:
        return trial_id in self._trial_id_to_study_id_and_number

    def _updatable(self, trial_id: int) -> FrozenTrial:
        """A copy of the cached trial to change (readers may hold the old one), if it may change."""
        return copy.copy(self._refuse_finished(trial_id))

    def _refuse_finished(self, trial_id: int) -> FrozenTrial:
        """The cached trial; Optuna's UpdateFinishedTrialError if it is finished. Called under
        `self._lock`, so it raises from the trial in hand: Optuna's `check_trial_is_updatable` looks
        the trial up again through `get_trial`, which takes that lock a second time."""
        trial = self._cached(trial_id)
        if trial.state.is_finished():
            raise UpdateFinishedTrialError(f"Trial#{trial.number} has already finished and can not be updated.")
        return trial

    def _put(self, trial: FrozenTrial) -> None:
        study_id, number = self._trial_id_to_study_id_and_number[trial._trial_id]
        self._studies[study_id].trials[number] = trial

    # -- reads -----------------------------------------------------------------------------------------

    def _cached(self, trial_id: int) -> FrozenTrial:
        study_id, number = self._trial_id_to_study_id_and_number[trial_id]
        return self._studies[study_id].trials[number]

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        self._loaded_first(study_id)

    def _loaded_first(self, study_id: int) -> None:
        """Reads the study's trials from the database the first time the driver touches it; never again."""
        if study_id not in self._loaded:
            self.writes.flush()  # what this process wrote, before the database's copy replaces it
            super()._read_trials_from_remote_storage(study_id)
            self._loaded.add(study_id)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        self._loaded_first(study_id)
        return super().get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            if trial_id in self._trial_id_to_study_id_and_number:
                return self._cached(trial_id)
        return self._backend.get_trial(trial_id)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        directions = self.get_study_directions(study_id)
        if len(directions) > 1:
            raise RuntimeError("Best trial can be obtained only for single-objective optimization.")
        complete = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise ValueError("No trials are completed yet.")
        pick = max if directions[0] == StudyDirection.MAXIMIZE else min
        return pick(complete, key=lambda t: t.values[0])

    # -- lifetime --------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Every queued write in the database; raises the first that failed."""
        self.writes.flush()

    def close(self) -> None:
        """Flush and stop the writer thread (a later write starts another)."""
        self.writes.close()

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its searcher, and this with it, at each of its snapshots: the backend is
        # what a copy needs (it reads the database afresh); a thousand cached trials are not.
        return {"backend": self._backend}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["backend"])  # type: ignore[misc]
        _LIVE.append(self)  # a copy Tune unpickles writes too: closed with the others


# The driver storages this process opened, flushed and stopped by `close_drivers` (which
# `search.close_storages` calls when a command ends, before the databases' engines close).
_LIVE: list[DriverStudyStorage] = []


def driver_storage(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """A new driver's storage over `storage` (one per sweep run: a fresh copy of the study, read
    after whatever wrote the database before it): an RDB storage gets this class; others (Optuna's
    gRPC proxy, which caches on its own) are used as they are."""
    if not isinstance(storage, RDBStorage):
        return storage
    driver = DriverStudyStorage(storage)
    _LIVE.append(driver)
    return driver


def close_drivers() -> None:
    """Every queued write of every driver storage in its database; their writer threads stopped."""
    while _LIVE:
        _LIVE.pop().close()
