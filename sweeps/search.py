"""Optuna samplers (always seeded explicitly) and the persistent study storage."""

from __future__ import annotations

from pathlib import Path

import optuna

from sweeps.config import SamplerSettings


def make_sampler(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    if settings.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.n_startup_trials)
    if settings.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {settings.name!r}")


def storage_url(output_dir: Path) -> str:
    return f"sqlite:///{(output_dir / 'optuna.db').resolve()}"


def open_storage(output_dir: Path) -> optuna.storages.RDBStorage:
    # sqlite waits for a lock instead of failing when two sweeps share the file.
    return optuna.storages.RDBStorage(storage_url(output_dir), engine_kwargs={"connect_args": {"timeout": 60}})


def study_exists(output_dir: Path, name: str) -> bool:
    if not (output_dir / "optuna.db").exists():
        return False
    return name in optuna.study.get_all_study_names(open_storage(output_dir))
