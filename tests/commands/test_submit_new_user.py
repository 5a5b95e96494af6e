"""`submit` as a new user tries it (docs/cluster.md, "A cluster on one machine"): `ray start --head`
from the project's virtualenv, with Ray's token authentication on as `ray start` sets it and its
token in ~/.ray/auth_token. The head is this test's own (free ports, its own temp dir and HOME),
stopped by process id, never with `ray stop`."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sweeps.commands.submit import EXIT_BAD_INPUT, SubmitError, records_place, submit
from tests.ray_cluster import PORT_FLAGS, RAY, _free_ports, _stop, _wait_until_serving

pytestmark = [pytest.mark.slow, pytest.mark.ray]

TINY = [
    "name=newuser",
    "n_trials=2",
    "max_epochs=1",
    "dataset.limit=200",
    "scheduler=none",
    "resources.num_cpus=2",
    "tracking.log_best_model=false",
]
RAY_ENV = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def _start_head(home: Path, path: str) -> tuple[subprocess.Popen, str, Path]:
    """`.venv/bin/ray start --head` as the user types it (HOME is the test's, so the token that
    `ray start` writes lands in <home>/.ray/auth_token); PATH as the user's shell has it."""
    env = {k: v for k, v in os.environ.items() if k not in RAY_ENV} | {
        "HOME": str(home),
        "PATH": path,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    temp_dir = Path(tempfile.mkdtemp(prefix="rnu-", dir="/tmp"))  # short: Ray's socket paths stay < 108 chars
    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS))))
    command = [
        str(RAY),
        "start",
        "--head",
        "--block",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--num-gpus=0",
        f"--temp-dir={temp_dir}",
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]
    log = temp_dir / "ray-start.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{ports['--dashboard-port']}"
    _wait_until_serving(url, proc, log)
    return proc, url, temp_dir


def _stop_head(proc: subprocess.Popen, temp_dir: Path) -> None:
    try:
        assert not _stop(proc)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_new_user_submits_to_a_head_started_from_the_venv(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in RAY_ENV:
        monkeypatch.delenv(key, raising=False)
    system_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != RAY.parent)
    out_dir = tmp_path / "shared" / "outputs"

    # The user's first local sweep (ray.init) wrote Ray's token to ~/.ray/auth_token; `ray start`
    # then turns token auth on with it. The same file, as Ray's own CLI writes it:
    subprocess.run(
        [str(RAY), "get-auth-token", "--generate"],
        env={**os.environ, "HOME": str(home)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (home / ".ray" / "auth_token").is_file()

    # 1. `.venv/bin/ray start --head` without activating the venv: a job's `python` is not the venv's.
    proc, url, temp_dir = _start_head(home, system_path)
    try:
        with pytest.raises(urllib.error.HTTPError, match="401"):  # token auth is on
            urllib.request.urlopen(f"{url}/api/jobs/", timeout=10)
        code = submit([*TINY, f"output_dir={out_dir}"], url, follow=True, out=io.StringIO())
        err = capsys.readouterr().err
        # The token was found (no "wants Ray's auth token"), the probe job ran and named the fix.
        assert code == EXIT_BAD_INPUT and err.count("\n") == 1, err
        assert "cluster's `python`" in err and "ray start --head" in err and "auth token" not in err
    finally:
        _stop_head(proc, temp_dir)
    assert not out_dir.exists()

    # 2. The fix: the venv first on PATH. A relative output_dir is refused; an absolute one is used.
    proc, url, temp_dir = _start_head(home, f"{RAY.parent}{os.pathsep}{system_path}")
    try:
        assert submit([*TINY, "output_dir=outputs"], url, follow=False, out=io.StringIO()) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert "output_dir=outputs is relative" in err and "deletes" in err and "output_dir=/absolute" in err
        out = io.StringIO()
        code = submit([*TINY, f"output_dir={out_dir}"], url, follow=True, out=out)
        assert code == 0, out.getvalue()[-4000:] + capsys.readouterr().err
        assert f"MLflow {out_dir}/mlflow.db" in out.getvalue()
    finally:
        _stop_head(proc, temp_dir)

    # 3. The cluster is gone; the records are where the submission said.
    client = MlflowClient(f"sqlite:///{out_dir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    assert len([r for r in runs if r.data.tags.get("sweeps.kind") == "trial" and r.info.status == "FINISHED"]) == 2
    study = optuna.load_study(study_name="newuser", storage=f"sqlite:///{out_dir / 'optuna.db'}")
    assert len(study.trials) == 2 and all(t.state.is_finished() for t in study.trials)


@pytest.mark.parametrize(
    ("overrides", "head_env", "expected"),
    [
        (["output_dir=/shared/out"], None, "MLflow /shared/out/mlflow.db, Optuna /shared/out/optuna.db"),
        (["output_dir=~/out"], None, "MLflow ~/out/mlflow.db"),
        ([], "/nfs/sweeps", "MLflow /nfs/sweeps/mlflow.db"),  # SWEEPS_OUTPUT_DIR on the head
        (["output_dir=/o", "tracking.uri=http://mlflow:5000"], None, "MLflow http://mlflow:5000, Optuna /o/optuna.db"),
        (
            ["tracking.uri=http://mlflow:5000", "tracking.study_storage=postgresql://u:pw@db/s"],
            None,
            "MLflow http://mlflow:5000, Optuna postgresql://u:***@db/s",
        ),
        ([], None, SubmitError),
        (["output_dir=outputs"], None, SubmitError),
        (["output_dir=runs/a", "tracking.uri=http://mlflow:5000"], None, SubmitError),  # Optuna would still be lost
    ],
)
def test_records_go_where_they_last(overrides, head_env, expected):
    if expected is SubmitError:
        with pytest.raises(SubmitError, match="relative"):
            records_place(overrides, head_env)
    else:
        assert records_place(overrides, head_env).startswith(expected)
