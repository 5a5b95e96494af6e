"""`sweeps.commands.submit` against a real Ray head on loopback (the Jobs API end to end), and its errors.

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
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweeps.commands.submit import EXIT_BAD_INPUT, entrypoint, resolve_address, submit
from tests.ray_cluster import (
    PORT_FLAGS,
    RAY,
    Head,
    _dashboard_dependency_error,
    _free_ports,
    _listening,
    _stop,
    _wait_until_serving,
)

TINY_SWEEP = ["n_trials=2", "max_epochs=1", "dataset.limit=200", "scheduler=none", "name=job", "resources.num_cpus=2"]


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
        "--disable-usage-stats",
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
                [str(RAY), "status", "--address", head.gcs_address],
                capture_output=True,
                text=True,
                timeout=120,
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
def test_a_cluster_that_wants_a_token_says_how_to_give_it(ray_head, capsys, monkeypatch, tmp_path):
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token either
    assert submit(TINY_SWEEP, ray_head.dashboard_url, follow=False, out=io.StringIO()) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "~/.ray/auth_token" in err and "ray get-auth-token" in err and err.count("\n") == 1
    # A wrong token where Ray keeps it: refused, naming where it was read.
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("0" * 64)
    assert submit(TINY_SWEEP, ray_head.dashboard_url, follow=False, out=io.StringIO()) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"refused the token from {tmp_path}/.ray/auth_token" in err and err.count("\n") == 1


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
