"""kill -9 of the sweep's driver at chosen moments, then resume: nothing lost, nothing run twice,
interrupted trials continued as themselves from their last checkpoint, the stores agree exactly."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import ROOT, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.reliability]

MAX_EPOCHS = 3
FILTERS = (8, 16, 24, 32)  # a grid: one trial per value, so each trial is named by its filters
# One slot (2 CPUs per trial on 2), no scheduler: every trial runs all its epochs, one after another.
ARGS = [
    "sampler=grid",
    "scheduler=none",
    f"max_epochs={MAX_EPOCHS}",
    "dataset.limit=200",
    "resources.num_cpus=2",
    "resources.cpus_per_trial=2",
    "space.filters=choice(8,16,24,32)",
    "space.learning_rate=0.02",
    "space.kernel_size=3",
    "space.padding=same",
    "space.dilation_rate=1",
    "space.kernel_regularizer_strength=0.0001",
    "model.optimizer=sgd",
    "resources.checkpoint_every_s=0",
    "tracking.log_best_model=false",
    "baseline=false",  # one trial per grid value, each named by its filters (the baseline's resume: test_baseline_modes_e2e)
]


def _study(out, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}")


def _runs(out):
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    return (
        client,
        [r for r in runs if r.data.tags.get("sweeps.kind") == "sweep"],
        [r for r in runs if r.data.tags.get("sweeps.kind") == "trial"],
    )


def _start(tmp_path, name, faults, *extra):
    out, log = tmp_path / "outputs", (tmp_path / "driver.log").open("w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SWEEPS_FAULTS": faults, "SWEEPS_FAULTS_DIR": str(tmp_path)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "run", f"name={name}", *ARGS, *extra, f"output_dir={out}"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    return out, driver


def _wait(driver, tmp_path, done, what):
    deadline = time.monotonic() + 240
    while not done():
        assert driver.poll() is None or what == "its own kill", (
            f"the driver ended before {what}:\n{(tmp_path / 'driver.log').read_text()[-3000:]}"
        )
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _kill(driver):
    """SIGKILL of the driver (if a fault has not killed it already), then of what it left behind
    (Ray's processes of its session): nothing of the first driver survives into the resume."""
    if driver.poll() is None:
        os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    try:
        os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _resume(tmp_path, name):
    env = {k: v for k, v in os.environ.items() if k not in ("SWEEPS_FAULTS",)}
    result = subprocess.run(
        [sys.executable, "-m", "sweeps", "resume", name, f"output_dir={tmp_path / 'outputs'}"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (tmp_path / "resume.log").write_text(result.stdout + result.stderr)
    return result


def _steps(client, run_id, key="val_accuracy"):
    return [(m.step, m.timestamp) for m in client.get_metric_history(run_id, key)]


def _assert_exact_records(out, name, continued=None):
    """Four trials, once each, all complete; one MLflow run per trial with its params and exactly
    the epochs 1..MAX_EPOCHS; the parent run FINISHED after two segments."""
    study = _study(out, name)
    client, parents, trials = _runs(out)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert sorted(t.params["filters"] for t in study.trials) == list(FILTERS)
    assert all(t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs["outcome"] == "COMPLETE" for t in study.trials)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and parents[0].data.tags["sweeps.segments"] == "2"
    by_id = {r.info.run_id: r for r in trials}
    assert len(trials) == 4 and set(by_id) == {t.user_attrs["mlflow_run_id"] for t in study.trials}
    for trial in study.trials:
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FINISHED" and run.data.tags["sweeps.state"] == "COMPLETE"
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert trial.params and {k: run.data.params.get(k) for k in trial.params} == {k: str(v) for k, v in trial.params.items()}
        for key in ("val_accuracy", "train_loss"):
            assert [s for s, _ in _steps(client, run.info.run_id, key)] == list(range(1, MAX_EPOCHS + 1)), (trial.number, key)
        assert ("sweeps.continued_from_epoch" in run.data.tags) == (trial.params["filters"] == continued)
    return study, client, by_id


def _before(out, name):
    study = _study(out, name)
    return {t.number: (t.params, t.user_attrs.get("mlflow_run_id"), t.state) for t in study.trials}


@pytest.mark.parametrize("epoch", [1, 3], ids=["in-first-epoch", "in-last-epoch"])
def test_killed_during_an_epoch_the_trial_goes_on_as_itself(tmp_path, epoch):
    """Killed while trial filters=16 trains epoch 1 (nothing saved yet: it starts again, as itself)
    or epoch 3 (epochs 1 and 2 saved: it goes on from the epoch-2 snapshot)."""
    out, driver = _start(tmp_path, "killed", f"stall_once@filters=16@{epoch}")
    _wait(driver, tmp_path, lambda: any(tmp_path.glob("stalled-*")), "trial filters=16 stalled")
    _kill(driver)
    before = _before(out, "killed")
    (interrupted,) = [n for n, (p, _, s) in before.items() if p.get("filters") == 16]
    assert before[interrupted][2] == optuna.trial.TrialState.RUNNING and before[interrupted][1]

    resumed_ms = time.time() * 1000
    result = _resume(tmp_path, "killed")
    assert f"continuing 1 interrupted (#{interrupted} from epoch {epoch})" in result.stdout, result.stdout
    study, client, by_id = _assert_exact_records(out, "killed", continued=16)
    # Finished trials untouched; the interrupted one kept its number, params and run.
    for number, (params, run_id, state) in before.items():
        assert (study.trials[number].params, study.trials[number].user_attrs["mlflow_run_id"]) == (params, run_id)
        if state == optuna.trial.TrialState.COMPLETE:
            assert by_id[run_id].data.tags.get("sweeps.continued_from_epoch") is None
    run_id = before[interrupted][1]
    assert by_id[run_id].data.tags["sweeps.continued_from_epoch"] == str(epoch - 1)
    assert by_id[run_id].data.tags["sweeps.epochs_redone"] == "0"  # a snapshot every epoch: no finished epoch lost
    # The epochs finished before the kill are not trained again: each epoch is in MLflow once (above),
    # those before `epoch` from before the kill, the rest from the resume.
    steps = _steps(client, run_id)
    assert [step for step, at in steps if at >= resumed_ms] == list(range(epoch, MAX_EPOCHS + 1)), steps


def test_killed_between_trials_the_rest_run_once(tmp_path):
    out, driver = _start(tmp_path, "between", "driver_kill@ended=2")
    _wait(driver, tmp_path, lambda: driver.poll() is not None, "its own kill")
    _kill(driver)
    assert driver.returncode == -signal.SIGKILL, (tmp_path / "driver.log").read_text()[-3000:]
    before = _before(out, "between")
    assert sorted(before) == [0, 1] and all(s == optuna.trial.TrialState.COMPLETE for _, _, s in before.values())

    result = _resume(tmp_path, "between")
    assert "Resuming sweep between: 2 of 4 trials done" in result.stdout and "continuing" not in result.stdout, result.stdout
    study, _, _ = _assert_exact_records(out, "between")
    for number, (params, run_id, _) in before.items():
        assert (study.trials[number].params, study.trials[number].user_attrs["mlflow_run_id"]) == (params, run_id)


def test_killed_during_the_report_resume_finishes_it(tmp_path):
    out, driver = _start(tmp_path, "report", "driver_kill@point=report")
    _wait(driver, tmp_path, lambda: driver.poll() is not None, "its own kill")
    _kill(driver)
    assert driver.returncode == -signal.SIGKILL
    _, parents, _ = _runs(out)
    assert parents[0].info.status == "RUNNING"  # the kill left it open: resume must close it
    before = _before(out, "report")
    assert len(before) == 4 and all(s == optuna.trial.TrialState.COMPLETE for _, _, s in before.values())

    result = _resume(tmp_path, "report")
    assert "Resuming sweep report: 4 of 4 trials done" in result.stdout and "Best trial #" in result.stdout, result.stdout
    _, client, _ = _assert_exact_records(out, "report")
    _, parents, _ = _runs(out)
    assert any(a.path.endswith(".csv") for a in client.list_artifacts(parents[0].info.run_id, "report"))


def test_resume_of_an_unknown_sweep_names_the_fix(tmp_path):
    result = run_cli("resume", "nosuch", f"output_dir={tmp_path / 'outputs'}", cwd=tmp_path)
    assert result.returncode == 2 and "no sweep named 'nosuch'" in result.stderr
    assert not (tmp_path / "outputs").exists()


def _snapshot(client, runs):
    """What a run holds: status, tags, params, every metric point."""
    return {
        r.info.run_id: (
            r.info.status,
            r.info.end_time,
            dict(r.data.tags),
            dict(r.data.params),
            {k: [(m.step, m.value, m.timestamp) for m in client.get_metric_history(r.info.run_id, k)] for k in r.data.metrics},
        )
        for r in runs
    }


def test_two_sweeps_of_one_name_on_one_store_never_touch_each_others_runs(tmp_path):
    """Sweep A is killed mid-trial; sweep B, same name, other output folder, same MLflow store, runs
    after it (so B's run is the newest of that name); resuming A mends and continues A's runs only."""
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    small = ["space.filters=choice(8,16)", "max_epochs=2", f"tracking.uri={store}"]
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir(), b_dir.mkdir()
    out_a, driver = _start(a_dir, "same", "stall_once@filters=16@1", *small)
    _wait(driver, a_dir, lambda: any(a_dir.glob("stalled-*")), "sweep A's trial stalled")
    _kill(driver)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    b = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", "name=same", *ARGS, *small, f"output_dir={b_dir / 'outputs'}"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert b.returncode == 0, b.stdout[-2000:] + b.stderr[-2000:]
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("sweeps").experiment_id
    parents = {r.info.run_id: r for r in client.search_runs([experiment]) if r.data.tags.get("sweeps.kind") == "sweep"}
    assert len(parents) == 2
    a_parent = next(r for r in parents.values() if r.info.status == "RUNNING")
    b_parent = next(r for r in parents.values() if r.info.status == "FINISHED")
    assert b_parent.info.start_time > a_parent.info.start_time  # found first by a lookup by name

    def children(parent):
        return [r for r in client.search_runs([experiment]) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]

    b_before = _snapshot(client, children(b_parent))

    result = _resume(a_dir, "same")
    assert _snapshot(client, children(b_parent)) == b_before, "resuming sweep A changed sweep B's runs"
    assert "continuing 1 interrupted" in result.stdout, result.stdout
    assert client.get_run(b_parent.info.run_id).info.status == "FINISHED"
    a_runs = children(a_parent)
    study = _study(out_a, "same")
    assert len(a_runs) == len(study.trials) == 2 and {r.info.run_id for r in a_runs} == {
        t.user_attrs["mlflow_run_id"] for t in study.trials
    }
    assert all(
        r.info.status == "FINISHED" and [m.step for m in client.get_metric_history(r.info.run_id, "val_accuracy")] == [1, 2]
        for r in a_runs
    )
    assert client.get_run(a_parent.info.run_id).info.status == "FINISHED"


def test_two_runs_of_one_name_at_once_one_drives_the_other_stops(tmp_path):
    """Both start together and pass the name check; only one may drive the study: the other
    stops with exit code 2 and one clear line, and the records are those of one sweep."""
    out = tmp_path / "outputs"
    small = ["space.filters=choice(8,16)", "max_epochs=1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    drivers = [
        subprocess.Popen(
            [sys.executable, "-m", "sweeps", "run", "name=twice", *ARGS, *small, f"output_dir={out}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    results = [d.communicate(timeout=600) for d in drivers]
    codes = sorted(d.returncode for d in drivers)
    assert codes == [0, 2], [(d.returncode, o[-1500:], e[-1500:]) for d, (o, e) in zip(drivers, results)]
    stopped = next(e for d, (o, e) in zip(drivers, results) if d.returncode == 2)
    assert "error: name: " in stopped and ("is being run right now" in stopped or "was started by another driver" in stopped), (
        stopped
    )
    assert len(stopped.strip().splitlines()) == 1 or "Traceback" not in stopped
    study = _study(out, "twice")
    client, parents, trials = _runs(out)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(study.trials) == len(trials) == 2


def test_a_second_driver_of_a_running_sweep_stops_and_a_killed_one_leaves_no_lock(tmp_path):
    """While sweep A runs, `run` of the same name (same config: it would resume A) stops with exit
    code 2 naming the driver that holds it, touching nothing; once that driver is killed -9, the
    kernel has dropped its lock and `resume` drives the sweep."""
    small = ["space.filters=choice(8,16)", "max_epochs=1"]
    out, driver = _start(tmp_path, "held", "stall_once@filters=16@1", *small)
    _wait(driver, tmp_path, lambda: any(tmp_path.glob("stalled-*")), "trial filters=16 stalled")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        second = subprocess.run(
            [sys.executable, "-m", "sweeps", "run", "name=held", *ARGS, *small, f"output_dir={out}"],
            capture_output=True,
            text=True,
            timeout=400,
            cwd=ROOT,
            env=env,
        )
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        assert f"is being run right now (driver pid {driver.pid} on " in second.stderr, second.stderr
        study = _study(out, "held")
        assert any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials), "the second driver touched the study"
    finally:
        _kill(driver)
    result = _resume(tmp_path, "held")
    assert "continuing 1 interrupted" in result.stdout, result.stdout


def test_resume_help_lists_every_setting_a_resume_may_change(capsys):
    """`resume --help` names the settings the resume check accepts: all of them (it left out verbose)."""
    from sweeps.cli import main
    from sweeps.config.saved import RESUMABLE

    with pytest.raises(SystemExit):
        main(["resume", "--help"])
    helped = " ".join(capsys.readouterr().out.split())  # argparse wraps the line
    listed = helped.split("may change ", 1)[1].split()[: len(RESUMABLE)]
    assert [key.rstrip(",") for key in listed] == list(RESUMABLE), helped
