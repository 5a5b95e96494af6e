"""`python -m sweeps dashboard NAME`: optuna-dashboard on the sweep's study (history, importances,
contour and parallel-coordinate views, live while the sweep runs).

optuna-dashboard is an optional dependency (extra `dashboard`); where it is missing, one line says
how to install it, exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from sweeps.core.errors import EXIT_OK, ConfigError

PIN = "optuna-dashboard==0.21.0"  # the same pin as pyproject.toml's extras
INSTALL = f"pip install '{PIN}'   (or, in a checkout: pip install -e '.[dashboard]')"


def study_url(host: str, port: int, study_id: int) -> str:
    return f"http://{host}:{port}/dashboard/studies/{study_id}"


def main(name: str, output_dir: Path, study_storage: str | None, host: str, port: int, out: TextIO = sys.stdout) -> int:
    """Serve until interrupted; raises ConfigError for an unknown sweep or a missing install."""
    import optuna

    from sweeps.storage.storages import open_storage, storage_url

    try:
        import optuna_dashboard
    except ImportError:
        raise ConfigError("dashboard", "optuna-dashboard is not installed", INSTALL) from None
    if study_storage is None and not (output_dir / "optuna.db").exists():
        raise ConfigError(
            "output_dir",
            f"no Optuna study database at {output_dir / 'optuna.db'}",
            "run a sweep first, or set output_dir=<the sweep's folder>",
        )
    storage = open_storage(output_dir, study_storage)
    names = optuna.study.get_all_study_names(storage)
    if name not in names:
        raise ConfigError(
            "name",
            f"no sweep named {name!r} in {storage_url(output_dir, study_storage)}",
            f"open one of: {', '.join(sorted(names))}" if names else "run a sweep first",
        )
    url = study_url(host, port, storage.get_study_id_from_name(name))
    print(f"optuna-dashboard of sweep {name} on {url}  (Ctrl-C to stop)", file=out, flush=True)
    try:
        optuna_dashboard.run_server(storage, host=host, port=port)
    except KeyboardInterrupt:
        pass
    return EXIT_OK
