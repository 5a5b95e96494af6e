"""`python -m sweeps submit`: hand a sweep to a running Ray cluster through Ray's Jobs API.

The job runs `python -m sweeps run <overrides>` on the cluster's head node with this project folder
uploaded as its working directory, so the code that runs is the code on this machine; the nodes only
need the pinned dependencies (cluster.yaml installs them). Ray is imported inside the functions that
talk to the cluster, so `import sweeps.commands.submit` stays as light as the rest of the CLI.

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

from sweeps.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, SubmitError
from sweeps.core.errors import EXIT_FAILED as EXIT_JOB_FAILED
from sweeps.core.redaction import redact_text

ADDRESS_ENV = "RAY_ADDRESS"
# Ray's client prefers this one over its address argument; it is cleared so that --address wins.
API_SERVER_ENV = "RAY_API_SERVER_ADDRESS"
# Ray's token authentication, as its own drivers read it.
AUTH_MODE_ENV, TOKEN_ENV, TOKEN_PATH_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
# Ray also honours .gitignore; these are spelt out because a job's upload is capped (GCS message
# size) and a virtualenv, a git history or a sweep's own outputs would blow it or leak local runs.
UPLOAD_EXCLUDES = (
    ".venv",
    ".git",
    "outputs",
    "__pycache__",
    ".pytest_cache",
    "*.egg-info",
    "build",
    "mlruns",
    "mlartifacts",
    "mlflow.db",
    "optuna.db",
)
# A blackholed address would otherwise hang for the OS's TCP timeout (minutes): Ray's client sets none.
CONNECT_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"http": 80, "https": 443, "ray": 10001, "": 6379}
POLL_S = 1.0


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
        head = probe(client)
        place = records_place(overrides, head.get("output_dir_env"))
        job_id = _submit_job(client, overrides)
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"Submitted job {job_id} to {resolved}: {entrypoint(overrides)}", file=out)
    for line in follow_commands(job_id, resolved):
        print(line, file=out)
    print(f"  its records:     {place}", file=out)
    out.flush()
    if not follow:
        return EXIT_OK
    return _follow(client, job_id, resolved, out)


# What `python -m sweeps run` imports on the head (import names of pyproject's dependencies).
REQUIRED_MODULES = ("hydra", "omegaconf", "optuna", "mlflow", "ray", "tensorflow", "keras", "pandas", "sklearn", "yaml")
PROBE_MARK = "SWEEPS_PROBE "
PROBE_TIMEOUT_S = 180.0
_PROBE_CODE = (
    "import importlib.util, json, os, sys; "
    f"missing = [m for m in {REQUIRED_MODULES!r} if importlib.util.find_spec(m) is None]; "
    f"print({PROBE_MARK!r} + json.dumps({{'python': sys.executable, 'version': list(sys.version_info[:2]), "
    "'missing': missing, 'output_dir_env': os.environ.get('SWEEPS_OUTPUT_DIR')}))"
)


def probe(client: Any, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Run a seconds-long job the way the sweep will run (the cluster's `python`, the same runtime
    env) and check that it can run the product, before the sweep is sent: a Ray job runs the first
    `python` on the head's PATH, which is not this project's virtualenv unless Ray was started from it."""
    import json

    from ray.exceptions import RayError

    try:
        job_id = client.submit_job(entrypoint=shlex.join(["python", "-c", _PROBE_CODE]), runtime_env=runtime_env())
        deadline = time.monotonic() + timeout_s
        while not (status := client.get_job_status(job_id)).is_terminal():
            if time.monotonic() > deadline:
                client.stop_job(job_id)
                raise SubmitError(f"the cluster did not run a {timeout_s:.0f} s probe job ({job_id}); is it busy or out of CPUs?")
            time.sleep(POLL_S / 4)
        logs = client.get_job_logs(job_id)
    except (OSError, RuntimeError, ValueError, RayError) as exc:
        raise SubmitError(f"the cluster refused the job: {_one_line(exc)}") from None
    lines = [line for line in logs.splitlines() if line.startswith(PROBE_MARK)]
    fix = (
        "start Ray on the head from the project's environment, its bin folder first on PATH "
        "(`source .venv/bin/activate && ray start --head`, or PATH=$PWD/.venv/bin:$PATH), or pip install -e . into the head's python"
    )
    if status.value != "SUCCEEDED" or not lines:
        raise SubmitError(
            f"the cluster's `python` cannot run a probe job ({status.value}: {_last_line(logs) or 'no output'}): {fix}"
        )
    head = json.loads(lines[-1].removeprefix(PROBE_MARK))
    if head["missing"] or head["version"] != list(sys.version_info[:2]):
        found = f"Python {'.'.join(map(str, head['version']))}" + (
            f" without {', '.join(head['missing'])}" if head["missing"] else ""
        )
        raise SubmitError(f"the cluster's `python` ({head['python']}) cannot run the sweep: {found}; {fix}")
    return head


SERVER_SCHEMES = ("http://", "https://", "postgresql", "mysql")


def records_place(overrides: Sequence[str], head_output_dir: str | None = None) -> str:
    """Where the sweep's records will be once the job is over, or a SubmitError when that place is
    inside the job's working directory, which Ray deletes with its session. `head_output_dir`:
    SWEEPS_OUTPUT_DIR on the head (the job's own environment sets the default, not this machine's)."""
    values = dict(o.split("=", 1) for o in overrides if "=" in o)
    output_dir = values.get("output_dir") or head_output_dir or "outputs"
    uri, study = values.get("tracking.uri", ""), values.get("tracking.study_storage", "")
    on_servers = uri.startswith(SERVER_SCHEMES) and study.startswith((*SERVER_SCHEMES[2:], "grpc://"))
    if output_dir.startswith(("/", "~")):  # config.py expands ~ on the head
        mlflow = uri if uri.startswith(SERVER_SCHEMES) else f"{output_dir}/mlflow.db"
        return f"MLflow {redact_text(mlflow)}, Optuna {redact_text(study or output_dir + '/optuna.db')}, checkpoints {output_dir}/ray (on the head; a folder every node shares)"
    if on_servers:
        return (
            f"MLflow {redact_text(uri)}, Optuna {redact_text(study)}; checkpoints in the job's temporary folder "
            "(deleted with it: to resume, give output_dir=/a/shared/folder)"
        )
    raise SubmitError(
        f"output_dir={output_dir} is relative: MLflow, Optuna and Ray would write inside the job's temporary working directory "
        "on the head, which Ray deletes with its session; pass output_dir=/absolute/folder (one every node shares), "
        "or record to servers: tracking.uri=http://<mlflow server> tracking.study_storage=postgresql://..."
    )


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
    # TUNE_FUNCTION_THREAD_TIMEOUT_S: see sweeps.execution.runtime.WORKER_ENV (not imported: it would import Ray).
    env = {
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONWARNINGS": "ignore",
        "TUNE_FUNCTION_THREAD_TIMEOUT_S": "600",
    }
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
    """A JobSubmissionClient for exactly this address (Ray's own env lookup would override it).

    A token is sent when RAY_AUTH_MODE=token says so, or when the cluster refuses a request without
    one: then it is looked up where Ray keeps it (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, or
    ~/.ray/auth_token, where `ray start` writes it), so a cluster started on this machine just works."""
    from ray.exceptions import AuthenticationError

    headers = auth_headers(environ) if environ.get(AUTH_MODE_ENV, "").lower() == "token" else {}
    try:
        return _client(address, headers)
    except AuthenticationError as exc:
        if headers:
            raise SubmitError(
                f"{address} refused the token ({_one_line(exc)}): check that it is the cluster's "
                "(`ray get-auth-token` on the head prints it)"
            ) from None
    headers = auth_headers(environ, required=False)
    if not headers:
        raise SubmitError(
            f"{address} wants Ray's auth token and none was found: copy it from the head (`ray get-auth-token` there "
            f"prints it) into ~/.ray/auth_token, or set {TOKEN_ENV} or {TOKEN_PATH_ENV}"
        )
    try:
        return _client(address, headers)
    except AuthenticationError as exc:
        raise SubmitError(
            f"{address} refused the token from {token_source(environ)} ({_one_line(exc)}): check that it is "
            "the cluster's (`ray get-auth-token` on the head prints it)"
        ) from None


def _client(address: str, headers: dict[str, str]) -> Any:
    from ray.exceptions import AuthenticationError, RayError
    from ray.job_submission import JobSubmissionClient

    try:
        with _environ({ADDRESS_ENV: address, API_SERVER_ENV: None}):
            return JobSubmissionClient(address, headers=headers)
    except AuthenticationError:
        raise
    except (OSError, RuntimeError, ValueError, RayError) as exc:
        raise SubmitError(f"cannot use the Ray cluster at {address}: {_one_line(exc)}") from None


def token_source(environ: Mapping[str, str] = os.environ) -> str:
    """Where Ray's clients take the token from, in Ray's order."""
    if environ.get(TOKEN_ENV, "").strip():
        return TOKEN_ENV
    return str(Path(environ.get(TOKEN_PATH_ENV) or Path.home() / ".ray" / "auth_token").expanduser())


def auth_headers(environ: Mapping[str, str] = os.environ, required: bool = True) -> dict[str, str]:
    """The bearer token of a token-auth cluster, looked up as Ray does. `required`: no token is an
    error (the user said RAY_AUTH_MODE=token), else it is no headers."""
    token = environ.get(TOKEN_ENV, "").strip()
    path = Path(token_source(environ)) if not token else None
    if path is not None and path.is_file():
        token = path.read_text().strip()
    if not token and required:
        raise SubmitError(
            f"{AUTH_MODE_ENV}=token but no token: set {TOKEN_ENV}, or {TOKEN_PATH_ENV} to a file holding it (default ~/.ray/auth_token)"
        )
    return {"Authorization": f"Bearer {token}"} if token else {}


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
        print(
            f"\nStopped following; job {job_id} goes on. Stop it with: ray job stop {job_id} --address {shlex.quote(address)}",
            file=out,
        )
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
    except (TimeoutError, ClientError, OSError, RuntimeError) as exc:
        # The job does not depend on this stream: say so and wait for its end instead.
        print(f"warning: lost the log stream ({_one_line(exc)}); waiting for job {job_id} to end", file=sys.stderr)


def _wait_until_done(client: Any, job_id: str) -> Any:
    # The log stream may close a moment before the job's status turns terminal.
    while not (status := client.get_job_status(job_id)).is_terminal():
        time.sleep(POLL_S)
    return status


def _one_line(exc: BaseException) -> str:
    return _first_line(str(exc)) or type(exc).__name__


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else ""


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


@contextmanager
def _quiet_ray_logs() -> Iterator[None]:
    """Ray's client logs each packaging step at INFO; the user needs the job id and the commands."""
    import ray.job_submission  # noqa: F401  (creates the loggers to quiet)

    loggers = [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
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
