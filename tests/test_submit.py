"""`sweeps.submit` against a real Ray head on loopback (the Jobs API end to end), and its errors.

The head is this test's own: free ports and a temp dir of its own, so it neither joins nor disturbs
Ray instances that other runs start on the same machine. It is stopped by process id, never with
`ray stop`, which kills every Ray process of the machine by name.
"""

from __future__ import annotations

import io
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sweeps.submit import EXIT_BAD_INPUT, entrypoint, resolve_address, submit

RAY = Path(sys.executable).with_name("ray")
PORT_FLAGS = (
    "--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port",
    "--node-manager-port", "--object-manager-port",
)
START_TIMEOUT_S = 90
TINY_SWEEP = ["n_trials=2", "max_epochs=1", "dataset.limit=200", "scheduler=none", "name=job", "resources.num_cpus=2"]


@dataclass(frozen=True)
class Head:
    gcs_address: str
    dashboard_url: str
    env: dict[str, str]
    log: Path


def _free_ports(count: int) -> list[int]:
    # Held open together so that no two flags get the same port.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                table[int(entry)] = int(fields[1])
    return table


def _descendants(root: int) -> set[int]:
    table, found, frontier = _parents(), set(), [root]
    while frontier:
        parent = frontier.pop()
        children = {pid for pid, ppid in table.items() if ppid == parent} - found
        found |= children
        frontier.extend(children)
    return found


def _alive(pids: set[int]) -> set[int]:
    return pids & set(_parents())


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_until_serving(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (token auth may refuse this anonymous probe): it is up
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the Ray dashboard did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> set[int]:
    """Stop the head: SIGTERM to `ray start --block` (it drains and ends its children), then SIGKILL
    whatever of its process tree is left. Returns the pids that are still alive."""
    tree = _descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in _alive(tree):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    return _alive(tree)


def _dashboard_dependency_error(env: dict[str, str]) -> str:
    code = "import ray._private.utils as u; e = u.get_dashboard_dependency_error(); print(e or '')"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Head]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    # The job's `python` is whatever python the head's PATH finds: make it this venv's.
    env |= {"PATH": f"{RAY.parent}{os.pathsep}{env.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0"}
    missing = _dashboard_dependency_error(env)
    if missing:
        pytest.fail(f"Ray's Jobs API needs the dashboard, which needs ray[default] ({missing}): install ray[default,tune]")
    temp_dir = Path(tempfile.mkdtemp(prefix="rsw-", dir="/tmp"))  # short: Ray's socket paths stay < 108 chars
    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS))))
    # Token auth (Ray's default once a token exists) with a token of this head's own, so the test
    # neither depends on nor touches ~/.ray/auth_token.
    token = temp_dir / "auth_token"
    token.write_text(secrets.token_hex(32))
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    log = temp_dir / "ray-start.log"
    command = [
        str(RAY), "start", "--head", "--block", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
        "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp_dir}", "--disable-usage-stats",
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    head = Head(f"127.0.0.1:{ports['--port']}", f"http://127.0.0.1:{ports['--dashboard-port']}", env, log)
    try:
        _wait_until_serving(head.dashboard_url, proc, log)
        yield head
    finally:
        left = _stop(proc)
        try:
            assert not left, f"processes of the test's Ray head survived: {sorted(left)}"
            assert not any(_listening(port) for port in (ports["--port"], ports["--dashboard-port"]))
            status = subprocess.run(
                [str(RAY), "status", "--address", head.gcs_address], capture_output=True, text=True, timeout=120,
                env={**env, "RAY_gcs_rpc_server_reconnect_timeout_s": "1"},
            )
            assert status.returncode != 0, status.stdout
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def with_token(ray_head, monkeypatch):
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(key, ray_head.env[key])


@pytest.mark.slow
@pytest.mark.ray
def test_a_submitted_sweep_runs_on_the_cluster_and_writes_its_stores(ray_head, with_token, tmp_path, monkeypatch):
    output_dir = tmp_path / "outputs"
    # --address wins over RAY_ADDRESS (Ray's own client would take the environment's)
    monkeypatch.setenv("RAY_ADDRESS", f"http://127.0.0.1:{_free_ports(1)[0]}")
    out = io.StringIO()
    code = submit([*TINY_SWEEP, f"output_dir={output_dir}"], ray_head.dashboard_url, follow=True, out=out)
    text = out.getvalue()
    assert code == 0, text[-4000:]
    job_id = text.split("Submitted job ", 1)[1].split()[0]
    assert f"ray job logs --follow {job_id} --address {ray_head.dashboard_url}" in text
    assert f"ray job stop {job_id} --address {ray_head.dashboard_url}" in text
    assert "Best trial #" in text and f"Job {job_id} SUCCEEDED" in text
    assert (output_dir / "mlflow.db").is_file() and (output_dir / "optuna.db").is_file()


@pytest.mark.slow
@pytest.mark.ray
def test_a_job_that_fails_on_the_cluster_returns_1(ray_head, with_token, tmp_path):
    out = io.StringIO()
    bad = ["space.kernel_size=interval(5, 1)", f"output_dir={tmp_path}"]  # refused by the sweep's own validation
    assert submit(bad, ray_head.dashboard_url, follow=True, out=out) == 1
    text = out.getvalue()
    assert "is empty" in text  # the job's own error, streamed
    assert text.splitlines()[-1].startswith("Job raysubmit_") and " FAILED: " in text.splitlines()[-1]


@pytest.mark.slow
@pytest.mark.ray
def test_a_cluster_that_wants_a_token_says_how_to_give_it(ray_head, capsys, monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert submit(TINY_SWEEP, ray_head.dashboard_url, follow=False, out=io.StringIO()) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "RAY_AUTH_MODE=token" in err and err.count("\n") == 1


def test_an_unreachable_address_is_one_line_and_exit_code_2(capsys):
    started = time.monotonic()
    code = submit(["n_trials=1"], f"http://127.0.0.1:{_free_ports(1)[0]}", follow=True, out=io.StringIO())
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and time.monotonic() - started < 10
    assert err.startswith("error: cannot reach a Ray cluster at http://127.0.0.1:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_no_address_names_both_ways_to_give_one(capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert submit([], None, follow=False, out=io.StringIO()) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "RAY_ADDRESS" in err and "--address" in err and err.count("\n") == 1


def test_the_address_comes_from_the_argument_then_ray_address():
    assert resolve_address("http://h:8265/", {"RAY_ADDRESS": "http://other:8265"}) == "http://h:8265"
    assert resolve_address(None, {"RAY_ADDRESS": "http://other:8265"}) == "http://other:8265"


def test_overrides_are_quoted_for_the_shell():
    overrides = ["space.kernel_size=choice(3,5)", "name=two words", "tracking.uri=$HOME;rm -rf x"]
    command = entrypoint(overrides)
    assert command.startswith("python -m sweeps run ")
    assert shlex.split(command)[4:] == overrides
