"""kill -9 of the sweep's driver mid-sweep, then resume: nothing lost, nothing run twice, stores agree."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import ROOT, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.ray]

N_TRIALS = 8
ARGS = ["name=killed", f"n_trials={N_TRIALS}", "max_epochs=3", "dataset.limit=300", "scheduler=none", "sampler=random",
        "resources.num_cpus=2", "tracking.log_best_model=false"]


def _finished(out) -> list[optuna.trial.FrozenTrial]:
    if not (out / "optuna.db").exists():
        return []
    try:
        study = optuna.load_study(study_name="killed", storage=f"sqlite:///{out / 'optuna.db'}")
    except KeyError:
        return []
    return [t for t in study.trials if t.state.is_finished()]


def test_killed_driver_then_resume(tmp_path):
    out = tmp_path / "outputs"
    log = tmp_path / "driver.log"
    with log.open("w") as sink:
        driver = subprocess.Popen(
            [sys.executable, "-m", "sweeps", "run", *ARGS, f"output_dir={out}"], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 300
    while len(_finished(out)) < 3:
        assert driver.poll() is None, f"the sweep ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.5)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {t.number: (t.state, t.values, t.user_attrs.get("mlflow_run_id")) for t in _finished(out)}
    assert len(before) >= 3

    result = run_cli("resume", "killed", f"output_dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Resuming sweep killed" in result.stdout

    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{out / 'optuna.db'}")
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweeps.kind") == "sweep"]
    trials = {r.data.tags["optuna.trial_number"]: r for r in runs if r.data.tags.get("sweeps.kind") == "trial"}
    # One parent, continued; one MLflow run per Optuna trial, none left RUNNING, states equal.
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and parents[0].data.tags["sweeps.segments"] == "2"
    assert len(trials) == len(study.trials)
    for trial in study.trials:
        run = trials[str(trial.number)]
        assert trial.state.is_finished() and run.info.status != "RUNNING"
        assert run.data.tags["sweeps.state"] == trial.user_attrs["outcome"]
    # Finished trials kept as they were, not run again.
    for number, (state, values, run_id) in before.items():
        trial = study.trials[number]
        assert (trial.state, trial.values, trial.user_attrs.get("mlflow_run_id")) == (state, values, run_id)
    outcomes = [t.user_attrs["outcome"] for t in study.trials]
    assert sum(o in ("COMPLETE", "PRUNED", "INFEASIBLE", "FAILED") for o in outcomes) == N_TRIALS
    assert set(outcomes) <= {"COMPLETE", "INFEASIBLE", "INTERRUPTED"}
    assert "Best trial #" in result.stdout


def test_resume_of_an_unknown_sweep_names_the_fix(tmp_path):
    result = run_cli("resume", "nosuch", f"output_dir={tmp_path / 'outputs'}", cwd=tmp_path)
    assert result.returncode == 2 and "no sweep named 'nosuch'" in result.stderr
    assert not (tmp_path / "outputs").exists()
