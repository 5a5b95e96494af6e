"""A real MLflow tracking server (basic auth, served artifacts) used by a real sweep."""

import os
import subprocess
import sys

import pytest
import requests
from mlflow import MlflowClient

from tests.conftest import MLFLOW_PASSWORD, ROOT, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_server_refuses_without_credentials_before_any_trial(mlflow_server, tmp_path):
    url, _ = mlflow_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    result = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", f"tracking.uri={url}", f"output_dir={tmp_path}/out"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "MLFLOW_TRACKING_USERNAME" in result.stderr
    assert not (tmp_path / "out").exists()


def test_sweep_through_the_server(mlflow_server, tmp_path, monkeypatch):
    url, folder = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_PASSWORD)
    out = tmp_path / "out"
    result = run_cli(
        "run",
        "name=srv",
        "n_trials=2",
        "max_epochs=1",
        "dataset.limit=200",
        "scheduler=none",
        "resources.num_cpus=2",
        f"tracking.uri={url}",
        f"output_dir={out}",
        cwd=tmp_path,
    )
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
    assert (
        requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "sweeps"}, timeout=5).status_code
        == 401
    )
