"""search.one_read: one storage read serves one ask, and the proposals are the ones Optuna makes without it."""

import optuna
import pytest

from sweeps.config import load_config
from sweeps.search import make_sampler, one_read, open_storage


def _proposals(tmp_path, name, batched):
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(tmp_path),
        sampler=make_sampler(load_config(["sampler=tpe"]).sampler, 3),
        direction="maximize",
    )
    study.enqueue_trial({"x": 0.5, "c": "b"})  # a warm-start point: the ask finds it first
    running, seen = [], []
    for _ in range(30):

        def ask():
            trial = study.ask()
            trial.suggest_float("x", 0.0, 1.0)
            if trial.suggest_categorical("c", ["a", "b"]) == "a":
                trial.suggest_int("n", 1, 8)  # a conditional param
            return trial

        if batched:
            with one_read(study):
                trial = ask()
        else:
            trial = ask()
        seen.append(trial.params)
        running.append(trial)
        if len(running) > 6:  # trials end while others run, as under Tune
            done = running.pop(0)
            study.tell(done, done.params["x"] + (0.2 if done.params["c"] == "a" else 0.0))
    return seen


def test_one_read_per_ask_proposes_what_optuna_proposes(tmp_path):
    assert _proposals(tmp_path, "batched", True) == _proposals(tmp_path, "plain", False)


def test_one_read_reads_the_storage_once_per_ask(tmp_path, monkeypatch):
    study = optuna.create_study(
        study_name="reads", storage=open_storage(tmp_path), sampler=make_sampler(load_config(["sampler=tpe"]).sampler, 0)
    )
    for value in range(12):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, value)
    storage, reads = study._storage, []
    read = type(storage).get_all_trials
    monkeypatch.setattr(type(storage), "get_all_trials", lambda self, *a, **k: reads.append(1) or read(self, *a, **k))
    with one_read(study):
        study.ask().suggest_float("x", 0.0, 1.0)
    assert len(reads) == 1
    reads.clear()
    study.ask().suggest_float("x", 0.0, 1.0)
    assert len(reads) > 1, "without it Optuna reads more than once per ask (else this test shows nothing)"
    assert "get_all_trials" not in vars(storage)  # the block leaves the storage as it was


@pytest.fixture(autouse=True)
def _closed():
    yield
    from sweeps.search import close_storages

    close_storages()
