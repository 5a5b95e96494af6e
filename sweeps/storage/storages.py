"""Optuna study storages: their URLs, the PostgreSQL lock and database drivers, and their one owner.

`open_storage` opens one storage per URL and keeps it; `close_storages` closes every one this process
opened (the driver's in-memory study storages first, sweeps.storage.studystore), once, when the command ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna

from sweeps import registry
from sweeps.core.redaction import redact_text
from sweeps.core.sqlite import fast_commits

STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql", "grpc")  # what tracking.study_storage may name


# Optuna's own schema in a PostgreSQL database. MLflow and Optuna both keep their schema version in
# a table named `alembic_version`; in one schema, whichever comes second finds the other's revision
# ("Can't locate revision identified by ..."). Optuna's tables live apart, so one database serves both.
OPTUNA_SCHEMA = "optuna"


# What a missing database driver needs. SQLAlchemy 2 maps postgresql:// to psycopg 3, not psycopg2.
DRIVER_FIX = "pip install -e '.[postgres]' (psycopg 3, SQLAlchemy's driver for postgresql://); for MySQL pip install PyMySQL and write mysql+pymysql://"


def storage_url(output_dir: Path, url: str | None = None) -> str:
    """The study's storage: a URL from tracking.study_storage, else sqlite in the output folder.
    A PostgreSQL URL gets Optuna's own schema (see OPTUNA_SCHEMA) unless it sets its own `options`;
    the URL returned is the one to give optuna.load_study or optuna-dashboard."""
    if url is None:
        return f"sqlite:///{(output_dir / 'optuna.db').resolve()}"
    if registry.scheme(url) == "postgresql" and "options=" not in url:
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{OPTUNA_SCHEMA}"
    return url


def missing_driver(url: str) -> bool:
    """Whether the database driver SQLAlchemy picks for `url` cannot be imported (False for URLs
    that are not SQLAlchemy's: files, http, grpc)."""
    if registry.scheme(url) not in ("sqlite", "postgresql", "mysql", "mssql", "oracle"):
        return False
    from sqlalchemy.engine import make_url

    try:
        make_url(url).get_dialect().import_dbapi()
    except ImportError:
        return True
    return False


# Any constant both drivers agree on: the key of the PostgreSQL advisory lock held while a store's tables are made.
_INIT_LOCK = 0x5EE95_1417


@contextmanager
def initialising(url: str) -> Iterator[None]:
    """Holds a PostgreSQL advisory lock while the caller opens a store on `url` for the first time,
    so two drivers starting at once do not both create the same schema or tables (PostgreSQL's
    CREATE ... IF NOT EXISTS is not safe against a concurrent twin: one fails with IntegrityError).
    Other databases: nothing to hold."""
    if registry.scheme(url) != "postgresql":
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SELECT pg_advisory_lock({_INIT_LOCK})"))
            try:
                if f"search_path%3D{OPTUNA_SCHEMA}" in url:
                    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
                    conn.commit()
                yield
            finally:
                conn.execute(text(f"SELECT pg_advisory_unlock({_INIT_LOCK})"))
                conn.commit()
    finally:
        engine.dispose()


# The one owner of every study storage this process opens: one per URL, reused by every caller
# (the checks, the sweep, the report), closed by `close_storages` when the command ends. Opening one
# per call left a SQLAlchemy engine (and its pooled connections) or a gRPC channel behind each time.
_OPEN: dict[str, optuna.storages.BaseStorage] = {}


def open_storage(output_dir: Path, url: str | None = None) -> optuna.storages.BaseStorage:
    """An RDB storage (sqlite, PostgreSQL, MySQL) or Optuna's gRPC proxy (grpc://host:port), which
    lets many machines share one study without each opening database connections. The same
    object for the same URL until `close_storages`."""
    url = storage_url(output_dir, url)
    if url not in _OPEN:
        _OPEN[url] = _new_storage(url)
    return _OPEN[url]


class _RDBStorage(optuna.storages.RDBStorage):
    """RDBStorage whose pickle (Ray Tune saves its searcher, and the storage with it, into the
    sweep's folder) holds the URL without its password; unpickled in a process that opened the
    storage, it takes the full URL back from there."""

    def __getstate__(self) -> dict:  # type: ignore[type-arg]
        return {**super().__getstate__(), "url": redact_text(self.url)}

    def __setstate__(self, state: dict) -> None:  # type: ignore[type-arg]
        full = next((url for url in _OPEN if redact_text(url) == state["url"]), state["url"])
        super().__setstate__({**state, "url": full})


def _new_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("grpc://"):
        host, _, port = url.removeprefix("grpc://").rstrip("/").partition(":")
        return optuna.storages.GrpcStorageProxy(host=host, port=int(port or 13000))
    # sqlite waits for a lock instead of failing when two sweeps share the file; servers drop dead connections.
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        fast_commits()
    with initialising(url):
        return _RDBStorage(url, engine_kwargs=kwargs)


def close_storages() -> None:
    """Close every storage `open_storage` opened: engines disposed (their connections closed),
    gRPC channels closed. Safe to call again; a later `open_storage` opens afresh."""
    from sweeps.storage.studystore import close_drivers

    close_drivers()  # their queued writes, while the engines are still open
    while _OPEN:
        _, storage = _OPEN.popitem()
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.remove_session()
            storage.engine.dispose()
        elif isinstance(storage, optuna.storages.GrpcStorageProxy):
            storage.close()


def study_exists(output_dir: Path, name: str, url: str | None = None) -> bool:
    if url is None and not (output_dir / "optuna.db").exists():
        return False  # asking would create an empty database
    return name in optuna.study.get_all_study_names(open_storage(output_dir, url))
