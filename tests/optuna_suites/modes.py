"""Optuna's storage modes with ours beside its own, for Optuna's suites vendored here (README.md).

`STORAGE_MODES` replaces `optuna.testing.storages.STORAGE_MODES` in the vendored tests:
`cached_sqlite` is Optuna's own mode, the control; `driver_sqlite` is the product's storage as a
sweep builds it (`open_storage` over a sqlite file in an output folder, then `driver_storage`).
`StorageSupplier` is Optuna's, taught that one more mode.

`BoundedTPESampler` is the product's TPE at a history small enough to bite in a short test: every
Optuna TPE test that runs more than `HISTORY` finished trials goes through its bounded path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.testing.storages import StorageSupplier as _OptunaStorageSupplier

from sweeps.samplers import factories
from sweeps.storage import storages, studystore
from sweeps.storage.studystore import DriverStudyStorage, driver_storage

CONTROL = "cached_sqlite"
OURS = "driver_sqlite"
STORAGE_MODES: list[Any] = [CONTROL, OURS]

# The histories the product's TPE runs Optuna's TPE tests at: one that bites (most of those tests
# make 10 to 100 finished trials), and the config's floor (sampler.history >= 250, where the bounded
# TPE must be Optuna's TPE proposal for proposal on every test). The class takes any history.
HISTORY = 8
FLOOR = 250

# Optuna TPE tests that assert whether two studies built to differ get the same exact proposal. At a
# history of 8 the bounded TPE models 8 of their 30 to 100 finished trials ("below" is gamma(8) = 1
# trial) and the proposals fall otherwise: both on the same prior-drawn candidate, or (with running
# trials, which the constant liar keeps beside the bounded history) apart. Which ones coincide moves
# with the history (any of 8 to 22 trips one or another of them), so it is the bound, by design, not a
# defect; they pass at the floor. Skipped at HISTORY only, saying why.
BOUND_CHANGES_THE_PROPOSAL = {
    "test_sample_relative_misc_arguments",
    "test_sample_relative_handle_unsuccessful_states",
    "test_sample_relative_pruned_state",
    "test_sample_independent_handle_unsuccessful_states",
    "test_sample_independent_ignored_states",
    "test_sample_independent_pruned_state",
}

# The product's one-writer design (studystore.py's docstring): a sweep's study has one writer, its
# driver, which reads the database once and writes behind. Optuna tests that need another writer,
# or an immediate write, cannot hold for it; they are skipped for our storage only, saying why.
SINGLE_WRITER = {
    "test_uncached_set": "writes are queued behind the driver's own copy (one writer thread), not made at once",
    "test_read_trials_from_remote_storage": "a driver reads its study from the database once; nobody else writes it",
    "test_unfinished_trial_ids": "one writer per study: a second storage writing the same study is what driver.lock prevents",
}


def skip_single_writer(storage: Any, test: str) -> None:
    if isinstance(storage, DriverStudyStorage):
        pytest.skip(f"single-writer design: {SINGLE_WRITER[test]}")


# Optuna tests that cannot run on any RDB storage (so not on the control either): they run in memory,
# as Optuna runs them, under the control's id, and are skipped under ours, saying why.
IN_MEMORY_ONLY = {
    "test_intersection_search_space": "Optuna's test passes distributions as enqueue_trial's user attrs, which no RDB "
    "storage can store (not JSON): it runs on Optuna's in-memory storage, under the control's id",
}

_TEMP_FILES: list[Any] = []


def rdb_url(mode: str) -> str:
    """The database a test's own RDBStorage opens: Optuna's `:memory:` for the control; a file for ours,
    as a sweep's study always is (the driver writes from its own thread, and each sqlite connection
    to `:memory:` is a database of its own)."""
    if mode == CONTROL:
        return "sqlite:///:memory:"
    _TEMP_FILES.append(tempfile.NamedTemporaryFile(suffix=".db"))
    return f"sqlite:///{_TEMP_FILES[-1].name}"


class StorageSupplier(_OptunaStorageSupplier):
    """Optuna's supplier, plus `driver_sqlite`: a fresh output folder, the study storage a sweep
    opens there (sweeps.storage.storages.open_storage), wrapped by `driver_storage`."""

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.storage_specifier != OURS:
            return super().__enter__()
        if self.extra_args:
            raise ValueError(f"{OURS} is built as a sweep builds it: it takes no arguments ({self.extra_args})")
        self._folder = tempfile.TemporaryDirectory(prefix="optuna-suite-")
        self._url = storages.storage_url(Path(self._folder.name))
        self.backend_storage = storages.open_storage(Path(self._folder.name))
        self.storage = driver_storage(self.backend_storage)
        assert isinstance(self.storage, DriverStudyStorage)
        return self.storage

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:  # type: ignore[no-untyped-def]
        if self.storage_specifier != OURS:
            return super().__exit__(exc_type, exc_val, exc_tb)
        try:
            self.storage.close()
        finally:
            if self.storage in studystore._LIVE:
                studystore._LIVE.remove(self.storage)
            backend = storages._OPEN.pop(self._url, None)
            if isinstance(backend, optuna.storages.RDBStorage):
                backend.remove_session()
                backend.engine.dispose()
            self._folder.cleanup()
        return None


def cached_storage(mode: str, backend: optuna.storages.RDBStorage) -> optuna.storages.BaseStorage:
    """What wraps an RDB storage in the mode: Optuna's `_CachedStorage`, or the driver's."""
    if mode == CONTROL:
        return optuna.storages._CachedStorage(backend)
    return driver_storage(backend)


class BoundedTPESampler(factories._BoundedTPESampler):
    """The product's TPE (`_BoundedTPESampler`) with Optuna's TPESampler's signature, at HISTORY."""

    history = HISTORY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, history=self.history, **kwargs)


class FloorTPESampler(BoundedTPESampler):
    history = FLOOR


def tpe_class(mode: str, test: str) -> type:
    """The TPE class a vendored TPE test runs with in `mode` ("optuna", "bounded-HISTORY", "bounded-FLOOR")."""
    if mode == "optuna":
        return optuna.samplers.TPESampler
    if mode == f"bounded-{FLOOR}":
        return FloorTPESampler
    if test in BOUND_CHANGES_THE_PROPOSAL:
        pytest.skip(
            f"at history {HISTORY} the bound changes which exact proposal this test compares (modes.BOUND_CHANGES_THE_PROPOSAL)"
        )
    return BoundedTPESampler


def _sweep_tpe(**kwargs: Any) -> BoundedTPESampler:
    return BoundedTPESampler(multivariate=True, group=True, **kwargs)  # what sweeps.samplers.factories.tpe sets


# The samplers Optuna's sampler suites run here, by id: Optuna's TPE (the control) and the product's.
TPE_SAMPLERS: dict[str, Any] = {
    "control-TPE": optuna.samplers.TPESampler,
    "control-multivariate-TPE": lambda **kw: optuna.samplers.TPESampler(multivariate=True, **kw),
    "bounded-TPE": BoundedTPESampler,
    "bounded-multivariate-TPE": lambda **kw: BoundedTPESampler(multivariate=True, **kw),
    "bounded-TPE-as-a-sweep-builds-it": _sweep_tpe,
}
# Optuna's RelativeSamplerTestCase hands sample_relative a search space without asking the sampler for
# one, which a group TPE (Optuna's too: it returns {}) never samples: multivariate without group, as Optuna runs it.
RELATIVE = ("control-multivariate-TPE", "bounded-multivariate-TPE")
# test_reproducible_in_other_process starts processes (about 10 s a sampler here): the control and ours as a sweep builds it.
OTHER_PROCESS = ("control-TPE", "bounded-TPE-as-a-sweep-builds-it")
