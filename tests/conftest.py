import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


# PBT's end-to-end sweeps: a space where only the learning rate is searched (the one param PBT
# explores), everything else constant, so a clone differs from its source only by what PBT changed.
PBT_LEARNING_RATE_ONLY = (
    "space.learning_rate=tag(log,interval(0.0000001,0.05))",
    "space.filters=8",
    "space.kernel_size=3",
    "space.padding=same",
    "space.dilation_rate=1",
    "space.kernel_regularizer_strength=0.0001",
)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m sweeps ...` in a subprocess, as a user runs it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sweeps", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=env
    )


def trained(trials):
    """The trials of a sweep's budget: all but the infeasible proposals, which are recorded and redrawn."""
    return [t for t in trials if t.user_attrs.get("outcome") != "INFEASIBLE"]


@pytest.fixture
def cli():
    return run_cli


def main_in_process(capsys, *argv: str) -> tuple[int, str, str]:
    """`python -m sweeps ...` in this process (`sweeps.cli.main`): (exit code, stdout, stderr)."""
    from sweeps import cli

    capsys.readouterr()
    code = cli.main(list(argv))
    sys.stdout.flush()  # the CLI's redacting stream holds a line until it ends
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 300, output=None) -> None:
    """Wait until the MLflow server `proc` answers /health (a loaded 2-core machine starts MLflow's
    auth app slowly); fail with its output, if `output` reads it, once it exits or time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert proc.poll() is None, f"the server exited{': ' + output()[-3000:] if output else ''}"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(1)


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
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
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


# ---------------------------------------------------------------- a real PostgreSQL server

POSTGRES_USER, POSTGRES_PASSWORD = "sweeps", "pg-test-secret"


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user Debian's package creates."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster (Debian's package, as `.ci/run` installs it) in a temporary
    folder on a free loopback port, with password authentication as a team's server has.
    Yields the server's base URL without a database, e.g. postgresql://sweeps:...@127.0.0.1:5433"""
    import importlib.util
    import shutil
    import tempfile

    bindir = _postgres_bin()
    message = None
    if bindir is None:
        message = "PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)"
    elif importlib.util.find_spec("psycopg") is None:
        message = "psycopg is not installed (pip install -e '.[test]')"
    if message:
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's tmp folder: the postgres user cannot enter root's private /tmp/pytest-of-root.
    folder = Path(tempfile.mkdtemp(prefix="sweeps-pg-"))
    data, pwfile = folder / "data", folder / "pw"
    pwfile.write_text(POSTGRES_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(pwfile, "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                POSTGRES_USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql://{POSTGRES_USER}:{POSTGRES_PASSWORD}@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True, timeout=120
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_server, request):
    """A fresh, empty database on the session's server, as a team's DBA would create one: its URL."""
    import re

    import psycopg

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"
