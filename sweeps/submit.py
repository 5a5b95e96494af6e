"""`python -m sweeps submit`: hand a sweep to a running Ray cluster through Ray's Jobs API.

The job runs `python -m sweeps run <overrides>` on the cluster's head node with this project folder
uploaded as its working directory, so the code that runs is the code on this machine; the nodes only
need the pinned dependencies (cluster.yaml installs them). Ray is imported inside the functions that
talk to the cluster, so `import sweeps.submit` stays as light as the rest of the CLI.

Exit codes, as the CLI's: 0 submitted (following: the job SUCCEEDED); 1 the job ended otherwise;
2 no address or an unreachable cluster, with nothing submitted; 130 stopped following (the job goes on).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

EXIT_OK, EXIT_JOB_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
ADDRESS_ENV = "RAY_ADDRESS"
# Ray's client prefers this one over its address argument; it is cleared so that --address wins.
API_SERVER_ENV = "RAY_API_SERVER_ADDRESS"
# Ray's token authentication, as its own drivers read it.
AUTH_MODE_ENV, TOKEN_ENV, TOKEN_PATH_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
PROJECT_DIR = Path(__file__).resolve().parent.parent
# Ray also honours .gitignore; these are spelt out because a job's upload is capped (GCS message
# size) and a virtualenv, a git history or a sweep's own outputs would blow it or leak local runs.
UPLOAD_EXCLUDES = (
    ".venv", ".git", "outputs", "__pycache__", ".pytest_cache", "*.egg-info", "build",
    "mlruns", "mlartifacts", "mlflow.db", "optuna.db",
)
# A blackholed address would otherwise hang for the OS's TCP timeout (minutes): Ray's client sets none.
CONNECT_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"http": 80, "https": 443, "ray": 10001, "": 6379}
POLL_S = 1.0


class SubmitError(Exception):
    """Nothing was submitted, for a reason the user can fix; the message is one line."""


def submit(overrides: list[str], address: str | None, follow: bool, out: TextIO | None = None) -> int:
    """Submit `python -m sweeps run <overrides>` as a Ray job; with follow, stream its logs to the end."""
    out = out or sys.stdout  # resolved per call, so redirected or captured stdout is honoured
    with _quiet_ray_logs():
        return _submit(overrides, address, follow, out)


def _submit(overrides: list[str], address: str | None, follow: bool, out: TextIO) -> int:
    try:
        resolved = resolve_address(address)
        check_reachable(resolved)
        client = connect(resolved)
        job_id = _submit_job(client, overrides)
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"Submitted job {job_id} to {resolved}: {entrypoint(overrides)}", file=out)
    for line in follow_commands(job_id, resolved):
        print(line, file=out)
    if not _writes_where_it_lasts(overrides):
        print(
            "note: output_dir is relative, so MLflow, Optuna and Ray write inside the job's temporary working "
            "directory on the head node; pass output_dir=/absolute/path (shared by every node on a multi-node cluster).",
            file=out,
        )
    out.flush()
    if not follow:
        return EXIT_OK
    return _follow(client, job_id, resolved, out)


def resolve_address(address: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The cluster's address: the argument, else RAY_ADDRESS, else a SubmitError saying how to give one."""
    chosen = (address or environ.get(ADDRESS_ENV) or "").strip().rstrip("/")
    if not chosen:
        raise SubmitError(
            f"no Ray cluster address: pass --address http://<head>:8265 or set {ADDRESS_ENV} "
            "(after `ray dashboard cluster.yaml`, the head's dashboard is http://127.0.0.1:8265)"
        )
    return chosen


def entrypoint(overrides: Sequence[str]) -> str:
    """The job's shell command; every override quoted, so grammar like choice(3,5) survives the shell."""
    return shlex.join(["python", "-m", "sweeps", "run", *overrides])


def runtime_env(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    # Unbuffered, or the sweep's progress would reach `ray job logs` only when the job ends.
    # TF_CPP_MIN_LOG_LEVEL: the trials inherit the job's environment (the driver adds none on a cluster).
    # TUNE_FUNCTION_THREAD_TIMEOUT_S: see sweeps.runner.WORKER_ENV (not imported: it would import Ray).
    env = {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore", "TUNE_FUNCTION_THREAD_TIMEOUT_S": "600"}
    return {"working_dir": str(project_dir), "excludes": list(UPLOAD_EXCLUDES), "env_vars": env}


def follow_commands(job_id: str, address: str) -> list[str]:
    where = f"{shlex.quote(job_id)} --address {shlex.quote(address)}"
    return [
        f"  follow its logs: ray job logs --follow {where}",
        f"  its status:      ray job status {where}",
        f"  stop it:         ray job stop {where}",
    ]


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, in one line, when nothing listens at the address."""
    host, port = _host_port(address)
    if host is None:
        return  # "auto": Ray looks the cluster up itself
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SubmitError(
            f"cannot reach a Ray cluster at {address} ({host}:{port}: {reason}); is it up, and is its dashboard "
            "port forwarded (`ray dashboard cluster.yaml`)?"
        ) from None


def _host_port(address: str) -> tuple[str | None, int]:
    if address == "auto":
        return None, 0
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
        parts = parts._replace(netloc="")
    if not parts.hostname:
        raise SubmitError(f"{address!r} is not a Ray address; write http://<head>:8265")
    return parts.hostname, port or DEFAULT_PORTS.get(parts.scheme, 80)


def connect(address: str, environ: Mapping[str, str] = os.environ) -> Any:
    """A JobSubmissionClient for exactly this address (Ray's own env lookup would override it)."""
    from ray.exceptions import AuthenticationError, RayError
    from ray.job_submission import JobSubmissionClient

    headers = auth_headers(environ)
    try:
        with _environ({ADDRESS_ENV: address, API_SERVER_ENV: None}):
            return JobSubmissionClient(address, headers=headers)
    except AuthenticationError as exc:
        hint = (
            "check that the token is the cluster's (`ray get-auth-token` on the head prints it)" if headers
            else f"the cluster wants a token: export {AUTH_MODE_ENV}=token, with the token in {TOKEN_ENV}, "
            f"{TOKEN_PATH_ENV} or ~/.ray/auth_token"
        )
        raise SubmitError(f"{address} refused the request ({_one_line(exc)}): {hint}") from None
    except (OSError, RuntimeError, ValueError, RayError) as exc:
        raise SubmitError(f"cannot use the Ray cluster at {address}: {_one_line(exc)}") from None


def auth_headers(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The bearer token of a token-auth cluster, looked up as Ray does, only when RAY_AUTH_MODE=token:
    never sent to an address the user did not say needs it."""
    if environ.get(AUTH_MODE_ENV, "").lower() != "token":
        return {}
    token = environ.get(TOKEN_ENV, "").strip()
    path = Path(environ.get(TOKEN_PATH_ENV) or Path.home() / ".ray" / "auth_token").expanduser()
    if not token and path.is_file():
        token = path.read_text().strip()
    if not token:
        raise SubmitError(f"{AUTH_MODE_ENV}=token but no token: set {TOKEN_ENV}, or {TOKEN_PATH_ENV} to a file holding it (default ~/.ray/auth_token)")
    return {"Authorization": f"Bearer {token}"}


def _submit_job(client: Any, overrides: Sequence[str]) -> str:
    from ray.exceptions import RayError

    try:
        return client.submit_job(entrypoint=entrypoint(overrides), runtime_env=runtime_env())
    except (OSError, RuntimeError, ValueError, RayError) as exc:
        raise SubmitError(f"the cluster refused the job: {_one_line(exc)}") from None


def _follow(client: Any, job_id: str, address: str, out: TextIO) -> int:
    try:
        _stream_logs(client, job_id, out)
        status = _wait_until_done(client, job_id)
    except KeyboardInterrupt:
        print(f"\nStopped following; job {job_id} goes on. Stop it with: ray job stop {job_id} --address {shlex.quote(address)}", file=out)
        return EXIT_INTERRUPTED
    # Ray's message repeats the log's tail, already streamed above: its first line is enough.
    message = _first_line(client.get_job_info(job_id).message or "")
    print(f"Job {job_id} {status.value}" + (f": {message}" if message and status.value != "SUCCEEDED" else ""), file=out)
    return EXIT_OK if status.value == "SUCCEEDED" else EXIT_JOB_FAILED


def _stream_logs(client: Any, job_id: str, out: TextIO) -> None:
    from aiohttp import ClientError

    async def pump() -> None:
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    try:
        asyncio.run(pump())
    except (ClientError, OSError, RuntimeError, asyncio.TimeoutError) as exc:
        # The job does not depend on this stream: say so and wait for its end instead.
        print(f"warning: lost the log stream ({_one_line(exc)}); waiting for job {job_id} to end", file=sys.stderr)


def _wait_until_done(client: Any, job_id: str) -> Any:
    # The log stream may close a moment before the job's status turns terminal.
    while not (status := client.get_job_status(job_id)).is_terminal():
        time.sleep(POLL_S)
    return status


def _writes_where_it_lasts(overrides: Sequence[str]) -> bool:
    # The job's own environment decides the default (outputs, relative), not this machine's.
    values = dict(o.split("=", 1) for o in overrides if "=" in o)
    output_dir = values.get("output_dir", "outputs")
    return output_dir.startswith(("/", "~"))  # config.py expands ~ on the head


def _one_line(exc: BaseException) -> str:
    return _first_line(str(exc)) or type(exc).__name__


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


@contextmanager
def _quiet_ray_logs() -> Iterator[None]:
    """Ray's client logs each packaging step at INFO; the user needs the job id and the commands."""
    import ray.job_submission  # noqa: F401  (creates the loggers to quiet)

    loggers = [
        logger for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and (name == "ray" or name.startswith("ray."))
    ]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextmanager
def _environ(values: Mapping[str, str | None]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            _set_env(key, value)
        yield
    finally:
        for key, value in saved.items():
            _set_env(key, value)


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
