"""A sweep's state beside its outputs (sweep.json: what a resume needs), its fingerprint (what makes two sweeps
the same experiment), and the locks: one driver per sweep, one opener of the output folder's stores at a time."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from sweeps.config.validation import ConfigError, SweepConfig
from sweeps.core.redaction import redact, restore
from sweeps.storage.storages import (
    study_exists,
)


def fingerprint(cfg: SweepConfig) -> str:
    """What makes two sweeps the same experiment: space, model, data settings, objectives."""
    same = {
        "space": cfg.space.describe(),
        "model": cfg.model,
        "objectives": cfg.objectives,
        "dataset": [
            cfg.dataset.name,
            cfg.dataset.path,
            cfg.dataset.val_fraction,
            cfg.dataset.limit,
            cfg.seed,
            *([cfg.dataset.options] if cfg.dataset.options else []),
        ],
    }
    return hashlib.sha256(json.dumps(same, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepState:
    """What a later `resume` needs, kept beside the sweep's outputs."""

    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    dataset_digest: str
    fingerprint: str
    segments: int = 1

    @staticmethod
    def path(cfg: SweepConfig) -> Path:
        return cfg.sweep_dir / "sweep.json"

    @classmethod
    def load(cls, cfg: SweepConfig) -> SweepState | None:
        path = cls.path(cfg)
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        # Saved without its password: the config given now holds it.
        state["tracking_uri"] = restore(state["tracking_uri"], cfg.tracking.uri)
        return cls(**state)

    def save(self, cfg: SweepConfig) -> None:
        _atomic_write(self.path(cfg), json.dumps(redact(asdict(self)), indent=2))


@contextmanager
def _stores_lock(output_dir: Path) -> Iterator[None]:
    """An exclusive lock on the output folder's stores while they are created or opened."""
    with open(output_dir / ".stores.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _driver_lock(cfg: SweepConfig) -> Iterator[None]:
    """One driver per sweep: a second `run` or `resume` of the same name stops with exit code 2
    while this one runs. An flock: the kernel releases it when its holder dies, even by kill -9."""
    path = cfg.sweep_dir / "driver.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                "name",
                f"sweep {cfg.name!r} is being run right now ({holder})",
                f"wait for it to end (python -m sweeps resume {cfg.name} continues it after), or pick another name=<new name>",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"driver pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _state_under_lock(cfg: SweepConfig, state: SweepState | None) -> SweepState | None:
    """The name was checked before the lock was taken: check again now that no one else can start
    this sweep. A resume takes the state as it is now (another driver may have resumed it meanwhile)."""
    now = SweepState.load(cfg)
    if state is None and (now is not None or study_exists(cfg.output_dir, cfg.name, cfg.tracking.study_storage)):
        raise ConfigError(
            "name",
            f"a sweep named {cfg.name!r} was started by another driver while this one got ready",
            f"continue it with python -m sweeps resume {cfg.name}, or pick another name=<new name>",
        )
    return now if state is not None else None


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
