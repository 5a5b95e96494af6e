"""The checks a sweep passes before its first record is written: a writable output folder, reachable study
storage with its driver, a space with at least one buildable model."""

from __future__ import annotations

from sweeps.config.validation import ConfigError, SweepConfig
from sweeps.core.redaction import redact_text
from sweeps.data.datasets import Dataset
from sweeps.storage.storages import (
    DRIVER_FIX,
    missing_driver,
    open_storage,
)


def _prepare_output(cfg: SweepConfig) -> None:
    try:
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        probe = cfg.output_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            "output_dir",
            f"{cfg.output_dir} is not writable ({exc.strerror})",
            "set output_dir=<a folder you can write> or SWEEPS_OUTPUT_DIR",
        ) from None


def _check_study_storage(cfg: SweepConfig) -> None:
    """The databases a sweep writes to fail before any trial, in one line each: a missing driver,
    a study database or proxy that cannot be reached, one URL for both stores where they cannot share it."""
    for field, url in (("tracking.uri", cfg.tracking.uri), ("tracking.study_storage", cfg.tracking.study_storage)):
        if url and missing_driver(url):
            raise ConfigError(field, f"no database driver for {url.split(':', 1)[0]}:// installed", DRIVER_FIX)
    if cfg.tracking.study_storage is None:
        return
    if cfg.tracking.study_storage == cfg.tracking.uri and not cfg.tracking.uri.startswith("postgresql"):
        # PostgreSQL keeps them apart by schema (search.OPTUNA_SCHEMA); sqlite and MySQL have none.
        raise ConfigError(
            "tracking.study_storage",
            f"MLflow and Optuna cannot share {redact_text(cfg.tracking.uri)} (both keep an alembic_version table)",
            "give Optuna its own database (another file or database name), or use PostgreSQL, where one database serves both",
        )
    import optuna

    try:
        optuna.study.get_all_study_names(open_storage(cfg.output_dir, cfg.tracking.study_storage))
    except Exception as exc:  # each backend fails its own way (sqlalchemy, grpc); all mean the same here
        raise ConfigError(
            "tracking.study_storage",
            f"cannot reach {redact_text(cfg.tracking.study_storage)} ({type(exc).__name__})",
            "start the database or the Optuna gRPC proxy, or set tracking.study_storage=null",
        ) from None


def _check_feasible(cfg: SweepConfig, dataset: Dataset, tries: int = 300) -> None:
    """An impossible space (no point gives a buildable model) is bad input, not 30 infeasible trials."""
    import optuna

    from models.plan import InfeasibleModel, plan_conv2d
    from sweeps.space import define_by_run, resolve_params

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=cfg.seed))
    suggest = define_by_run(cfg.space, cfg.model)
    reason = ""
    for _ in range(tries if cfg.space.searched else 1):
        trial = study.ask()
        suggest(trial)
        try:
            plan_conv2d(
                resolve_params(cfg.model, cfg.space, trial.params),
                dataset.input_shape,
                dataset.num_classes,
                cfg.space.max_params,
                cfg.space.max_flops,
            )
            return
        except InfeasibleModel as exc:
            reason = str(exc)
        finally:
            study.tell(trial, 0.0)
    raise ConfigError(
        "space",
        f"no model of this space can be built on {'x'.join(map(str, dataset.input_shape))} images (e.g. {reason})",
        "allow padding=same, smaller kernels or dilation, fewer blocks, or a larger budget",
    )
