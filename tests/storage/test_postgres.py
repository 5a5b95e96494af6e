"""A real PostgreSQL server (tests/conftest.py::postgres_server) as MLflow's and Optuna's store,
as a team shares one: one URL for both, two URLs, two drivers at once, a killed driver resumed,
and the team-server recipe of docs/team-server.md."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sweeps.storage.storages import open_storage, storage_url
from tests.conftest import ROOT, _free_port, run_cli, wait_healthy

TINY = [
    "n_trials=2",
    "max_epochs=1",
    "dataset.limit=200",
    "scheduler=none",
    "sampler=random",
    "tracking.log_best_model=false",
    "tracking.log_report=false",
]


def _without_driver(*args: str, cwd) -> subprocess.CompletedProcess:
    """`python -m sweeps ...` where psycopg cannot be imported, as in a venv installed without the extra."""
    code = (
        "import runpy, sys; sys.modules['psycopg'] = sys.modules['psycopg2'] = None; "
        f"sys.argv = ['sweeps', *{list(args)!r}]; runpy.run_module('sweeps', run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "tracking.study_storage=postgresql://team:s3cret@127.0.0.1:1/sweeps"],
        ["run", "tracking.uri=postgresql://team:s3cret@127.0.0.1:1/sweeps"],
        ["server", "--backend-store-uri", "postgresql://team:s3cret@127.0.0.1:1/sweeps"],
    ],
)
def test_missing_driver_names_the_extra_that_installs_it(args, tmp_path):
    result = _without_driver(*args, f"output_dir={tmp_path}/out", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "pip install -e '.[postgres]'" in result.stderr and "psycopg2" not in result.stderr
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_one_sqlite_file_for_both_stores_is_refused_with_the_fix(tmp_path):
    url = f"sqlite:///{tmp_path}/both.db"
    result = run_cli("run", f"tracking.uri={url}", f"tracking.study_storage={url}", f"output_dir={tmp_path}/out", cwd=tmp_path)
    assert result.returncode == 2 and "tracking.study_storage" in result.stderr and "own database" in result.stderr
    assert not (tmp_path / "both.db").exists()


def _recorded(tracking_uri: str, study_url: str, name: str, n_trials: int, password: str) -> None:
    """Every trial of sweep `name` in both stores, agreeing, and no password in MLflow's params or tags."""
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("sweeps.kind") == "sweep" and r.data.tags.get("sweeps.name") == name)
    children = {r.info.run_id: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    study = optuna.load_study(study_name=name, storage=study_url)
    assert parent.info.status == "FINISHED"
    assert len(study.trials) == len(children) == n_trials
    for trial in study.trials:
        run = children[trial.user_attrs["mlflow_run_id"]]
        assert trial.state.is_finished() and run.info.status == "FINISHED"
        assert run.data.tags["sweeps.state"] == trial.user_attrs["outcome"]
        assert "val_accuracy" in run.data.metrics
    for record in (parent, *children.values()):
        assert not any(password in str(v) for v in (*record.data.params.values(), *record.data.tags.values()))


@pytest.mark.slow
@pytest.mark.ray
def test_one_url_for_both_stores_two_drivers_at_once(postgres_db, tmp_path):
    """What a team with one database does: tracking.uri and tracking.study_storage the same URL,
    two sweeps started at once from two drivers into it (this ended in alembic's "Can't locate revision")."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    drivers, first = [], []
    for name in ("left", "right"):
        args = [
            "run",
            f"name={name}",
            *TINY,
            "resources.num_cpus=1",
            f"tracking.uri={postgres_db}",
            f"tracking.study_storage={postgres_db}",
            f"output_dir={tmp_path}/{name}",
        ]
        drivers.append(
            subprocess.Popen(
                [sys.executable, "-m", "sweeps", *args],
                cwd=tmp_path,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
        # The second starts once the first has its Ray up and its records open: two Ray heads
        # starting at the same second on a busy 2-core machine miss Ray's fixed 30 s start-up wait.
        # (Two drivers creating the stores at the same moment: test_stores_created_by_many_at_once.)
        while name == "left" and "trials to run" not in (line := drivers[0].stdout.readline()):
            assert line, "the first driver ended before its sweep started"
            first.append(line)
    for driver in drivers:
        output, _ = driver.communicate(timeout=900)
        assert driver.returncode == 0, output[-3000:]
        assert "pg-test-secret" not in output
    for name in ("left", "right"):
        _recorded(postgres_db, storage_url(tmp_path, postgres_db), name, 2, "pg-test-secret")
    # Nothing of either sweep fell back to local files.
    assert not list(tmp_path.rglob("mlflow.db")) and not list(tmp_path.rglob("optuna.db"))


def test_stores_created_by_many_at_once(postgres_db):
    """Four drivers opening MLflow's store and Optuna's study on one fresh database at the same moment
    (PostgreSQL's CREATE ... IF NOT EXISTS fails for all but one without sweeps.storage.storages.initialising)."""
    code = (
        "import sys; from pathlib import Path; from sweeps.storage.storages import initialising, open_storage; "
        "from tracking import SweepTracker; url = sys.argv[1]\n"
        "with initialising(url): SweepTracker(url, 'sweeps')\n"
        "open_storage(Path('.'), url)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, postgres_db], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(outputs)[-3000:]
    client = MlflowClient(postgres_db)
    assert [e.name for e in client.search_experiments()].count("sweeps") == 1


def _finished(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:  # open_storage: the driver may not have made Optuna's schema yet
        return [
            t for t in optuna.load_study(study_name=name, storage=open_storage(Path("."), url)).trials if t.state.is_finished()
        ]
    except KeyError:
        return []


@pytest.mark.slow
@pytest.mark.ray
def test_killed_driver_then_resume_with_two_urls(postgres_server, tmp_path):
    """MLflow and Optuna in two databases; kill -9 of the driver mid-sweep, then resume."""
    import psycopg

    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        for db in ("kill_mlflow", "kill_optuna"):
            conn.execute(f"DROP DATABASE IF EXISTS {db}")
            conn.execute(f"CREATE DATABASE {db}")
    mlflow_url, optuna_url = f"{postgres_server}/kill_mlflow", f"{postgres_server}/kill_optuna"
    study_url = storage_url(tmp_path, optuna_url)
    args = [
        "name=killed",
        "n_trials=5",
        "max_epochs=2",
        "dataset.limit=200",
        "scheduler=none",
        "sampler=random",
        "resources.num_cpus=2",
        "tracking.log_best_model=false",
        "tracking.log_report=false",
        f"tracking.uri={mlflow_url}",
        f"tracking.study_storage={optuna_url}",
        f"output_dir={tmp_path}/out",
    ]
    log = tmp_path / "driver.log"
    with log.open("w") as sink:
        driver = subprocess.Popen([sys.executable, "-m", "sweeps", "run", *args], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while len(_finished(optuna_url, "killed")) < 2:
        assert driver.poll() is None, f"the sweep ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.5)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {t.number: (t.state, t.values) for t in _finished(optuna_url, "killed")}

    # The URLs' passwords are on no disk (sweeps/core/redaction.py): resume is given them again.
    result = run_cli(
        "resume",
        "killed",
        f"output_dir={tmp_path}/out",
        f"tracking.uri={mlflow_url}",
        f"tracking.study_storage={optuna_url}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    study = optuna.load_study(study_name="killed", storage=study_url)
    client = MlflowClient(mlflow_url)
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    trials = {r.data.tags["optuna.trial_number"]: r for r in runs if r.data.tags.get("sweeps.kind") == "trial"}
    assert len(trials) == len(study.trials)
    for trial in study.trials:
        assert trial.state.is_finished() and trials[str(trial.number)].info.status != "RUNNING"
    for number, kept in before.items():
        assert (study.trials[number].state, study.trials[number].values) == kept
    outcomes = [t.user_attrs["outcome"] for t in study.trials]
    assert sum(o != "INTERRUPTED" for o in outcomes) == 5
    # Each store in its own database: MLflow's tables are not in Optuna's and the other way round.
    import psycopg

    with psycopg.connect(optuna_url) as conn:
        assert not conn.execute("SELECT 1 FROM information_schema.tables WHERE table_name = 'experiments'").fetchall()
    with psycopg.connect(mlflow_url) as conn:
        assert not conn.execute("SELECT 1 FROM information_schema.tables WHERE table_name = 'trials'").fetchall()


@pytest.mark.slow
@pytest.mark.ray
def test_team_server_recipe(postgres_db, tmp_path, monkeypatch):
    """docs/team-server.md, step by step: one PostgreSQL database, `python -m sweeps server` on it
    with basic auth and artifacts served over HTTP, a sweep from a user's machine with the Optuna
    study in the same database."""
    admin_password, port = "team-admin-pw", _free_port()
    # The recipe keeps the database's password out of the URL: PGPASSWORD on each side.
    database = postgres_db.replace(":pg-test-secret@", "@")
    server_env = {
        **os.environ,
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "team-secret",
        "PGPASSWORD": "pg-test-secret",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sweeps",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--auth",
            "--backend-store-uri",
            database,
            f"output_dir={tmp_path}/server-home",
        ],
        cwd=ROOT,
        env=server_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, output=server.stdout.read)
        user_env = {
            **os.environ,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": admin_password,
            "PGPASSWORD": "pg-test-secret",
            "PYTHONUNBUFFERED": "1",
        }
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sweeps",
                "run",
                "name=team",
                *TINY,
                "resources.num_cpus=2",
                f"tracking.uri={url}",
                f"tracking.study_storage={database}",
                f"output_dir={tmp_path}/laptop",
            ],
            cwd=tmp_path,
            env=user_env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            monkeypatch.setenv(key, user_env[key])
        _recorded(url, storage_url(tmp_path, postgres_db), "team", 2, "pg-test-secret")
        client = MlflowClient(url)
        parent = client.search_runs(
            [client.get_experiment_by_name("sweeps").experiment_id], filter_string="tags.`sweeps.kind` = 'sweep'"
        )[0]
        assert [a.path for a in client.list_artifacts(parent.info.run_id, "config")] == ["config/resolved.yaml"]
        # Artifacts went over HTTP into the server's folder; the user's machine kept no store.
        assert any((tmp_path / "server-home" / "server" / "artifacts").rglob("resolved.yaml"))
        assert not list((tmp_path / "laptop").rglob("mlflow.db")) and not list((tmp_path / "laptop").rglob("optuna.db"))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
