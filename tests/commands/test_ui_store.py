"""`python -m sweeps ui` opens the store tracking.uri names, not output_dir/mlflow.db."""

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ROOT, _free_port, run_cli


def test_ui_names_the_missing_store_of_tracking_uri(tmp_path):
    other = tmp_path / "elsewhere" / "other.db"
    result = run_cli("ui", f"tracking.uri=sqlite:///{other}", f"output_dir={tmp_path / 'out'}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: tracking.uri: ") and str(other) in result.stderr
    assert str(tmp_path / "out" / "mlflow.db") not in result.stderr


@pytest.mark.slow
def test_ui_serves_the_sqlite_store_tracking_uri_names(tmp_path):
    from mlflow import MlflowClient

    other = tmp_path / "other.db"
    MlflowClient(f"sqlite:///{other}").create_experiment("mine")  # a real store, not in output_dir
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sweeps",
            "ui",
            f"tracking.uri=sqlite:///{other}",
            f"output_dir={tmp_path / 'out'}",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/get-by-name",
                    params={"experiment_name": "mine"},
                    timeout=5,
                )
                if answer.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the UI did not start"
            time.sleep(1)
        assert answer.json()["experiment"]["name"] == "mine"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
