"""Secrets never reach disk, the records or the terminal: a real sweep through a real MLflow server
(basic auth) whose password is in tracking.uri itself."""

import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from tests.conftest import MLFLOW_PASSWORD, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.ray]

NOISE = ("cudart_stub.cc", "absl::InitializeLog", "FutureWarning", "INFO mlflow")


def _run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    return subprocess.run([sys.executable, "-m", "sweeps", *args], cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=600)


def test_a_password_in_the_tracking_uri_is_written_nowhere(mlflow_server, tmp_path):
    url, _ = mlflow_server
    uri = url.replace("http://", f"http://admin:{MLFLOW_PASSWORD}@")
    out = tmp_path / "out"
    result = _run("run", "name=secret", "n_trials=2", "max_epochs=1", "dataset.limit=200", "scheduler=none",
                  "resources.num_cpus=2", f"tracking.uri={uri}", f"output_dir={out}", cwd=tmp_path)
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


def test_an_error_about_the_server_never_shows_the_password(mlflow_server, tmp_path):
    url, _ = mlflow_server
    result = _run("run", "n_trials=1", f"tracking.uri={url.replace('http://', 'http://admin:wrong-pass-123@')}",
                  f"output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "wrong-pass-123" not in result.stdout + result.stderr
    assert "admin:***@" in result.stderr and "wrong user or password in tracking.uri" in result.stderr
    assert not (tmp_path / "out").exists()
