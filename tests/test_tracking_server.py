"""A real MLflow tracking server (basic auth, served artifacts) used by a real sweep."""

import os
import socket
import subprocess
import sys
import time

import pytest
import requests
from mlflow import MlflowClient

from tests.conftest import ROOT, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.ray]
PASSWORD = "correct-horse-battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    port = _free_port()
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD, "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "server", "--port", str(port), "--auth", f"output_dir={folder}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert proc.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(1)
    yield url, folder
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def test_server_refuses_without_credentials_before_any_trial(server, tmp_path):
    url, _ = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    result = subprocess.run([sys.executable, "-m", "sweeps", "run", f"tracking.uri={url}", f"output_dir={tmp_path}/out"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "MLFLOW_TRACKING_USERNAME" in result.stderr
    assert not (tmp_path / "out").exists()


def test_sweep_through_the_server(server, tmp_path, monkeypatch):
    url, folder = server
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    out = tmp_path / "out"
    result = run_cli("run", "name=srv", "n_trials=2", "max_epochs=1", "dataset.limit=200", "scheduler=none",
                     "resources.num_cpus=2", f"tracking.uri={url}", f"output_dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    client = MlflowClient(url)
    exp = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sweeps.name") == "srv")
    assert len([r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]) == 2
    assert parent.data.params["tracking.uri"] == url
    # Artifacts went through the server into its own folder, not into the sweep's outputs.
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "config")] == ["config/resolved.yaml"]
    assert not (out / "mlartifacts").exists()
    assert any((folder / "server" / "artifacts").rglob("resolved.yaml"))
    # Without credentials the server answers 401.
    assert requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "sweeps"}, timeout=5).status_code == 401
