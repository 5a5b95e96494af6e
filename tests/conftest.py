import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m sweeps ...` in a subprocess, as a user runs it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sweeps", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=env
    )


@pytest.fixture
def cli():
    return run_cli


MLFLOW_PASSWORD = "correct-horse-battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server (basic auth, --serve-artifacts) on a free loopback port."""
    folder = tmp_path_factory.mktemp("server")
    port = _free_port()
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": MLFLOW_PASSWORD, "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "server", "--port", str(port), "--auth", f"output_dir={folder}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # a loaded 2-core machine starts the auth app slowly
    try:
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(1)
    except BaseException:  # a server that never answered is stopped too, not left running
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        try:
            os.killpg(proc.pid, 9)  # its uvicorn workers, still starting, ignore SIGTERM
        except ProcessLookupError:
            pass
        raise
    yield url, folder
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)
