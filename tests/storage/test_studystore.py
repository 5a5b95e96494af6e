"""sweeps.storage.studystore: the driver reads its study from memory and writes the database behind, with
the same proposals as Optuna's own storage, what resume needs in the database at once, and the
rest there once flushed. Real sqlite stores throughout; one test runs against a real PostgreSQL."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.config.validation import load_config
from sweeps.samplers.factories import make_sampler
from sweeps.storage.storages import close_storages, open_storage
from sweeps.storage.studystore import DriverStudyStorage, driver_storage


def _study(tmp_path, name, storage=None, seed=3):
    return optuna.create_study(
        study_name=name,
        storage=storage if storage is not None else driver_storage(open_storage(tmp_path)),
        sampler=make_sampler(load_config(["sampler=tpe"]).sampler, seed),
        direction="maximize",
        load_if_exists=True,
    )


def _ask(study):
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    if trial.suggest_categorical("c", ["a", "b"]) == "a":
        trial.suggest_int("n", 1, 8)  # a conditional param
    return trial


def _sweep(study, n=30, running_at_once=6):
    """Asks n trials with some running at once, as under Tune: three epochs reported, then told."""
    study.enqueue_trial({"x": 0.5, "c": "b"})  # a warm-start point: the ask finds it first
    running, seen = [], []
    for _ in range(n):
        trial = _ask(study)
        seen.append(trial.params)
        running.append(trial)
        if len(running) > running_at_once:
            done = running.pop(0)
            for epoch in (1, 2, 3):
                done.report(done.params["x"] * epoch / 3, epoch)
            done.set_user_attr("checkpoint", f"/ckpt/{done.number}")
            study.tell(done, done.params["x"] + (0.2 if done.params["c"] == "a" else 0.0))
    return seen, running


def _in_database(tmp_path, name):
    """The study as another process sees it: a fresh RDB storage on the same file."""
    backend = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    try:
        return {t.number: t for t in optuna.load_study(study_name=name, storage=backend).get_trials(deepcopy=False)}
    finally:
        backend.engine.dispose()


def test_the_driver_proposes_what_optuna_proposes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ours, _ = _sweep(_study(tmp_path / "a", "s"))
    theirs, _ = _sweep(_study(tmp_path / "b", "s", storage=open_storage(tmp_path / "b")))
    assert ours == theirs


def test_an_ask_reads_nothing_from_the_database_once_loaded(tmp_path, monkeypatch):
    study = _study(tmp_path, "reads")
    _sweep(study, n=12)
    backend, reads = study._storage._backend, []
    read = type(backend)._get_trials
    monkeypatch.setattr(type(backend), "_get_trials", lambda self, *a, **k: reads.append(1) or read(self, *a, **k))
    _ask(study)
    assert reads == []
    plain = _study(tmp_path, "reads", storage=open_storage(tmp_path))
    _ask(plain)
    assert reads, "Optuna's own storage reads on every ask (else this test shows nothing)"


def test_after_a_flush_the_database_holds_what_the_driver_holds(tmp_path):
    study = _study(tmp_path, "same")
    _sweep(study)
    study._storage.flush()
    ours = {t.number: t for t in study.get_trials(deepcopy=False)}
    theirs = _in_database(tmp_path, "same")
    assert ours.keys() == theirs.keys()
    for number, t in ours.items():
        d = theirs[number]
        assert (t.state, t.values, t.params, t.intermediate_values, t.user_attrs) == (
            d.state,
            d.values,
            d.params,
            d.intermediate_values,
            d.user_attrs,
        ), number
    assert any(t.state == TrialState.RUNNING for t in ours.values())
    assert sum(t.state == TrialState.COMPLETE for t in ours.values()) == 24
    assert (
        study.best_trial.number
        == max((t for t in theirs.values() if t.state == TrialState.COMPLETE), key=lambda t: t.value).number
    )


def test_a_new_trial_and_a_tell_are_in_the_database_when_the_call_returns(tmp_path, monkeypatch):
    study = _study(tmp_path, "now")
    trial = _ask(study)
    assert _in_database(tmp_path, "now")[trial.number].state == TrialState.RUNNING  # its number, before it trains
    for epoch in (1, 2):
        trial.report(0.1 * epoch, epoch)
    study.tell(trial, 0.7)
    told = _in_database(tmp_path, "now")[trial.number]
    assert (told.state, told.value, told.intermediate_values) == (TrialState.COMPLETE, 0.7, {1: 0.1, 2: 0.2})


def test_a_write_the_database_refuses_stops_the_driver_at_its_next_write(tmp_path, monkeypatch):
    study = _study(tmp_path, "refused")
    trial = _ask(study)
    backend = study._storage._backend

    def refuse(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(backend, "set_trial_intermediate_value", refuse)
    trial.report(0.5, 1)
    with pytest.raises(RuntimeError, match="disk full"):
        study.tell(trial, 0.5)  # its queued write ahead of it failed: the tell is not stored over it


def test_a_killed_driver_leaves_its_trials_and_tells_in_the_database(tmp_path):
    """SIGKILL right after the driver's last tell: every trial it created is in the database with
    its number, each told trial with its state and value."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {os.getcwd()!r})
        import optuna
        from pathlib import Path
        from sweeps.storage.storages import open_storage
        from sweeps.storage.studystore import driver_storage
        study = optuna.create_study(study_name="k", storage=driver_storage(open_storage(Path({str(tmp_path)!r}))), direction="maximize")
        trials = [study.ask() for _ in range(5)]
        for t in trials:
            t.suggest_float("x", 0.0, 1.0)
            t.report(0.3, 1)
        study.tell(trials[0], 0.9)
        study.tell(trials[1], 0.8)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    found = _in_database(tmp_path, "k")
    assert sorted(found) == [0, 1, 2, 3, 4]
    assert [(found[n].state, found[n].value) for n in (0, 1)] == [(TrialState.COMPLETE, 0.9), (TrialState.COMPLETE, 0.8)]
    assert {found[n].state for n in (2, 3, 4)} == {TrialState.RUNNING}  # what resume reconciles


def test_a_pickled_copy_carries_no_trials_and_reads_the_database_afresh(tmp_path):
    study = _study(tmp_path, "pickled")
    _sweep(study, n=20)
    storage = study._storage
    storage.flush()
    copy = pickle.loads(pickle.dumps(storage))
    assert len(pickle.dumps(storage)) < 2_000  # Tune pickles its searcher at each snapshot
    assert isinstance(copy, DriverStudyStorage)
    assert len(copy.get_all_trials(study._study_id)) == 20


def test_other_storages_are_used_as_they_are():
    memory = optuna.storages.InMemoryStorage()
    assert driver_storage(memory) is memory


def test_the_driver_store_on_a_real_postgresql(postgres_db, tmp_path):
    storage = driver_storage(open_storage(tmp_path, postgres_db))
    study = _study(tmp_path, "pg", storage=storage)
    _, running = _sweep(study, n=15)
    storage.flush()
    theirs = optuna.load_study(study_name="pg", storage=storage._backend.url)  # Optuna's own storage, its own connection
    assert len(theirs.trials) == 15
    assert {t.number for t in theirs.get_trials(states=(TrialState.RUNNING,))} == {t.number for t in running}
    assert {len(t.intermediate_values) for t in theirs.get_trials(states=(TrialState.COMPLETE,))} == {3}


@pytest.fixture(autouse=True)
def _closed():
    yield
    close_storages()


def test_a_command_that_ends_leaves_every_queued_write_in_the_database(tmp_path):
    """search.close_storages (every command's end) flushes each driver storage before the engines close."""
    study = _study(tmp_path, "ends")
    trial = _ask(study)
    slow = threading.Event()  # the database is slow: the writes wait behind this until 0.5 s from now
    study._storage.writes.submit("slow", slow.wait)
    threading.Timer(0.5, slow.set).start()
    trial.report(0.25, 1)
    trial.set_user_attr("checkpoint", "/ckpt/0")
    close_storages()
    stored = _in_database(tmp_path, "ends")[trial.number]
    assert (stored.intermediate_values, stored.user_attrs["checkpoint"]) == ({1: 0.25}, "/ckpt/0")


# -- Optuna's contract where the driver broke it (issue 22; tests/optuna_suites runs Optuna's own tests) --


def _in_thread(fn, timeout_s=20.0):
    """Runs `fn` in a thread and returns what it raised (None if nothing); fails, rather than hangs,
    if it has not returned after `timeout_s`."""
    raised = []

    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            raised.append(e)
        else:
            raised.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout_s)
    assert not worker.is_alive(), f"the write did not return in {timeout_s} s: it blocks on the storage's own lock"
    return raised[0]


@pytest.mark.parametrize(
    "write",
    [
        lambda trial: trial.set_user_attr("k", "v"),
        lambda trial: trial.storage.set_trial_system_attr(trial._trial_id, "k", "v"),
        lambda trial: trial.report(0.5, 1),
        lambda trial: trial.suggest_float("late", 0.0, 1.0),
        lambda trial: trial.storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [2.0]),
        lambda trial: trial.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL),
    ],
    ids=["user-attr", "system-attr", "intermediate-value", "param", "values", "state"],
)
def test_a_write_to_a_finished_trial_is_refused_at_once_never_blocked(tmp_path, write):
    study = _study(tmp_path, "late-write")
    trial = _ask(study)
    study.tell(trial, 1.0)
    trial.storage = study._storage

    raised = _in_thread(lambda: write(trial))

    assert isinstance(raised, optuna.exceptions.UpdateFinishedTrialError), raised
    assert f"Trial#{trial.number} has already finished" in str(raised)
    assert study.trials[trial.number].value == 1.0
    assert _in_thread(lambda: study.tell(_ask(study), 0.5)) is None  # and the storage goes on


def test_a_refused_param_leaves_the_study_s_distributions_as_they_were(tmp_path):
    study = _study(tmp_path, "refused-param")
    finished = _ask(study)
    study.tell(finished, 1.0)
    storage = study._storage
    wide = optuna.distributions.FloatDistribution(0.0, 1.0)
    choices = optuna.distributions.CategoricalDistribution(["p", "q"])

    refused = _in_thread(lambda: storage.set_trial_param(finished._trial_id, "later", 0.25, wide))
    assert isinstance(refused, optuna.exceptions.UpdateFinishedTrialError), refused  # the trial is told
    open_trial = study.ask()
    storage.set_trial_param(open_trial._trial_id, "later", 1, choices)  # so "later" is still free to be anything

    assert storage.get_trial(open_trial._trial_id).distributions["later"] == choices
    storage.flush()
    assert _in_database(tmp_path, "refused-param")[open_trial.number].distributions["later"] == choices


def test_a_trial_s_start_and_completion_in_memory_are_what_the_database_stored(tmp_path):
    name = "datetimes"
    study = _study(tmp_path, name)
    study.enqueue_trial({"x": 0.5, "c": "b"})
    told = _ask(study)  # claimed from WAITING: started by the backend's RUNNING write
    study.tell(told, 0.5)
    failed = _ask(study)
    study.tell(failed, state=TrialState.FAIL)
    running = _ask(study)
    study._storage.flush()

    stored = _in_database(tmp_path, name)
    for trial in (told, failed, running):
        mine = study._storage.get_trial(trial._trial_id)
        theirs = stored[trial.number]
        assert (mine.datetime_start, mine.datetime_complete) == (theirs.datetime_start, theirs.datetime_complete), trial.number
    assert stored[told.number].datetime_complete is not None and stored[running.number].datetime_complete is None
