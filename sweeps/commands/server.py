"""`python -m sweeps server`: an MLflow tracking server that several machines can share.

A database backend (sqlite by default, any SQLAlchemy URL such as postgresql://...) and
--serve-artifacts, so trials and workers send artifacts over HTTP and never need the server's disk.
With --auth, MLflow's basic-auth app: its admin password and Flask secret come from the
environment only (MLFLOW_AUTH_ADMIN_PASSWORD, MLFLOW_FLASK_SERVER_SECRET_KEY), never from config.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sweeps.core.errors import ConfigError
from sweeps.core.redaction import redact_text
from sweeps.storage.storages import DRIVER_FIX, missing_driver

AUTH_ENV = ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")


def server_command(folder: Path, host: str, port: int, backend: str | None, auth: bool) -> tuple[list[str], dict[str, str]]:
    """The `mlflow server` command line and environment for a server whose files live in `folder`."""
    folder = folder.resolve()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend or f"sqlite:///{folder / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        (folder / "artifacts").as_uri(),
        "--host",
        host,
        "--port",
        str(port),
    ]
    env = dict(os.environ)
    if auth:
        missing = [name for name in AUTH_ENV if not env.get(name)]
        if missing:
            raise ConfigError(
                "--auth",
                f"{' and '.join(missing)} not set",
                "export them (the admin's password and a random secret) before starting the server",
            )
        # MLflow's default auth config keeps its user database in the current folder: keep it here.
        ini = folder / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{folder / 'basic_auth.db'}\n"
            "admin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        command += ["--app-name", "basic-auth"]
    return command, env


def main(folder: Path, host: str, port: int, backend: str | None, auth: bool) -> int:
    if backend and missing_driver(backend):
        raise ConfigError("--backend-store-uri", f"no database driver for {backend.split(':', 1)[0]}:// installed", DRIVER_FIX)
    folder.mkdir(parents=True, exist_ok=True)
    command, env = server_command(folder, host, port, backend, auth)
    print(
        f"MLflow tracking server on http://{host}:{port} (store {redact_text(command[command.index('--backend-store-uri') + 1])}); "
        f"sweeps use it with tracking.uri=http://{host}:{port}",
        flush=True,
    )
    return subprocess.call(command, env=env)
