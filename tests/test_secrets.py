"""Secrets never reach disk, the records or the terminal: a real sweep through a real MLflow server
whose URI carries a password (user:password@host)."""

import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from tests.conftest import _free_port, wait_healthy

MLFLOW_PASSWORD = "correct-horse-battery"

pytestmark = [pytest.mark.slow, pytest.mark.ray]

NOISE = ("cudart_stub.cc", "absl::InitializeLog", "FutureWarning", "INFO mlflow")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow server with one worker (quick to start on a loaded machine); it ignores the
    URI's credentials, which is all this test needs: they must be written nowhere."""
    folder = tmp_path_factory.mktemp("secret-server")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            (folder / "artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, folder
    finally:
        for sig in (15, 9):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            if sig == 15:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass


def _run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    return subprocess.run(
        [sys.executable, "-m", "sweeps", *args],
        cwd=cwd,
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_password_in_the_tracking_uri_is_written_nowhere(mlflow_server, tmp_path):
    url, _ = mlflow_server
    uri = url.replace("http://", f"http://admin:{MLFLOW_PASSWORD}@")
    out = tmp_path / "out"
    result = _run(
        "run",
        "name=secret",
        "n_trials=2",
        "max_epochs=1",
        "dataset.limit=200",
        "scheduler=none",
        "resources.num_cpus=2",
        f"tracking.uri={uri}",
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the terminal: no password, and only the product's own lines
    assert MLFLOW_PASSWORD not in result.stdout + result.stderr
    assert "admin:***@" in result.stdout
    assert not [word for word in NOISE if word in result.stderr], result.stderr[-3000:]
    # every file of the sweep: config.yaml, sweep.json, Ray's result folders, checkpoints, reports
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files) and any(p.parent.parent.name == "ray" for p in files)
    assert [p for p in files if MLFLOW_PASSWORD.encode() in p.read_bytes()] == []
    # the records: params, tags, the resolved config artifact
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.name` = 'secret'")
    parent = runs[0]
    assert parent.data.params["tracking.uri"] == url.replace("http://", "http://admin:***@")
    for run in client.search_runs([experiment.experiment_id]):
        assert MLFLOW_PASSWORD not in repr(run.data.params) + repr(run.data.tags)
    text = open(client.download_artifacts(parent.info.run_id, "config/resolved.yaml", str(tmp_path))).read()
    assert MLFLOW_PASSWORD not in text and "admin:***@" in text
    # resume needs the password again (it is on no disk), and accepts it given as an override
    again = _run("resume", "secret", f"output_dir={out}", cwd=tmp_path)
    assert again.returncode == 2 and "tracking.uri" in again.stderr and MLFLOW_PASSWORD not in again.stderr
