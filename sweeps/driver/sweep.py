"""One sweep from validated config to summary: dataset, tracker, Ray run, best model, report.

Everything that can be wrong with the input is checked before the first record is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from sweeps.config.validation import RESUMABLE, ConfigError, SweepConfig, validate
from sweeps.core.redaction import is_redacted, redact, redact_text, restore
from sweeps.data.datasets import Dataset, load_dataset, record_folder
from sweeps.samplers.factories import (
    DRIVER_FIX,
    close_storages,
    initialising,
    missing_driver,
    open_storage,
    storage_url,
    study_exists,
)
from sweeps.space import flatten


@dataclass(frozen=True)
class Summary:
    name: str
    wall_time_s: float
    counts: dict[str, int]
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_run_id: str | None
    model_uri: str | None
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    metric: str
    study_url: str
    objectives: tuple[tuple[str, str], ...] = ()
    pareto: tuple[dict[str, Any], ...] = ()  # multi-objective: the non-dominated trials
    stopped_because: str | None = None
    goal_reached: str | None = None  # stop_at reached: why it ended before n_trials (a success)
    registered: str | None = None  # the registry alias of the best model
    test_accuracy: float | None = None  # the best model's score on the held-out test split, if any

    def text(self) -> str:
        c = self.counts
        lines = [
            f"Sweep {self.name} finished in {self.wall_time_s:.1f} s",
            f"Trials: {sum(c.values())} | completed {c.get('COMPLETE', 0)} | stopped early {c.get('PRUNED', 0)}"
            f" | infeasible {c.get('INFEASIBLE', 0)} | failed {c.get('FAILED', 0) + c.get('INTERRUPTED', 0)}"
            + (f" | not run {c['NOT_RUN']}" if c.get("NOT_RUN") else ""),
        ]
        if self.stopped_because:
            lines.insert(0, f"Sweep {self.name} STOPPED: {self.stopped_because}")
        if self.goal_reached:
            lines.insert(1, f"Ended early, goal met: {self.goal_reached}")
        if self.best_number is None:
            lines.append("Best trial: none completed")
        else:
            lines.append(f"Best trial #{self.best_number}: {self.metric} = {self.best_value:.4f} (MLflow run {self.best_run_id})")
            lines += [f"    {k} = {v}" for k, v in self.best_params.items()]
        if len(self.objectives) > 1:
            names = [m for m, _ in self.objectives]
            lines.append(f"Pareto front of {', '.join(f'{m} ({d})' for m, d in self.objectives)}: {len(self.pareto)} trials")
            for point in self.pareto:
                values = ", ".join(f"{n} = {point['values'][n]:.4g}" for n in names)
                lines.append(f"    #{point['number']}: {values}")
        if self.test_accuracy is not None:
            lines.append(f"Test accuracy of the best model (held-out split, not used for selection): {self.test_accuracy:.4f}")
        if self.model_uri:
            lines.append(f"Best model: {self.model_uri}" + (f", registered as {self.registered}" if self.registered else ""))
        lines.append(f"MLflow UI: {redact_text(ui_command(self.tracking_uri))}")
        lines.append(
            f"  then open {ui_url(self.tracking_uri, self.experiment_id, self.parent_run_id)}   (or: python -m sweeps ui)"
        )
        lines.append(f"Optuna study '{self.name}': {redact_text(self.study_url)}")
        return "\n".join(lines)


def ui_command(tracking_uri: str, port: int = 5000) -> str:
    if tracking_uri.startswith("http"):
        return f"already served at {tracking_uri}"
    return f"{sys.executable} -m mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port {port}"


def ui_url(tracking_uri: str, experiment_id: str, run_id: str, port: int = 5000) -> str:
    from tracking.note import run_link

    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else f"http://127.0.0.1:{port}"
    return f"{base}/{run_link(experiment_id, run_id)}"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


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


def _with_new_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A sampler or scheduler setting added since the sweep was saved (e.g. sampler.history) takes its
    default from the option's YAML; the settings the sweep saved are kept as they were."""
    from sweeps.config.validation import CONF_DIR

    for group in ("sampler", "scheduler"):
        saved = raw.get(group)
        yaml_path = CONF_DIR / group / f"{saved.get('name')}.yaml" if isinstance(saved, dict) else None
        if yaml_path is not None and yaml_path.is_file():
            raw[group] = {**(yaml.safe_load(yaml_path.read_text()) or {}), **saved}
    return raw


def load_saved_config(name: str, output_dir: Path, overrides: list[str]) -> SweepConfig:
    """The config a sweep started with, plus the few settings a resume may change."""
    from omegaconf import OmegaConf

    path = output_dir / "sweeps" / name / "config.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in (output_dir / "sweeps").glob("*/config.yaml"))
        raise ConfigError(
            "name",
            f"no sweep named {name!r} in {output_dir}",
            f"resume one of: {', '.join(known)}" if known else "start it with python -m sweeps run name=...",
        )
    raw = _with_new_settings(OmegaConf.to_container(OmegaConf.load(path), resolve=True))
    for text in overrides:
        key, _, value = text.partition("=")
        section, _, leaf = key.partition(".")
        saved = raw.get(section, {}).get(leaf) if leaf and isinstance(raw.get(section), dict) else None
        if is_redacted(saved) and restore(saved, yaml.safe_load(value)) != saved:
            raw[section][leaf] = yaml.safe_load(value)  # a secret the saved config hides, given again
            continue
        if key not in RESUMABLE:
            raise ConfigError(
                key,
                "cannot change when resuming (the sweep keeps its space, data and model)",
                f"change only {', '.join(RESUMABLE)}, or start a new sweep with run name=<new>",
            )
        raw[key] = yaml.safe_load(value)
    raw["output_dir"] = str(output_dir)
    hidden = [f"{s}.{k}" for s, v in raw.items() if isinstance(v, dict) for k, x in v.items() if is_redacted(x)]
    if hidden:
        raise ConfigError(
            hidden[0],
            "the saved config hides its password (secrets are never written to disk)",
            f"give it again: python -m sweeps resume {name} '{hidden[0]}=<the full value>'",
        )
    return validate(raw)


def start(cfg: SweepConfig, out: Any = sys.stdout) -> Summary:
    """`run`: a new sweep, or, when one of that name exists with the same config, its resumption."""
    _check_study_storage(cfg)
    state = SweepState.load(cfg)
    if state is not None:
        if state.fingerprint != fingerprint(cfg):
            raise ConfigError(
                "name",
                f"a sweep named {cfg.name!r} already exists in {cfg.output_dir} with a different space, model or data",
                f"continue it as it was with `python -m sweeps resume {cfg.name}`, or pick another name=<new name>",
            )
        print(f"Sweep {cfg.name} exists with this config: resuming it (same as python -m sweeps resume {cfg.name})", file=out)
        return _execute(cfg, state, out)
    if study_exists(cfg.output_dir, cfg.name, cfg.tracking.study_storage):
        raise ConfigError(
            "name", f"a sweep named {cfg.name!r} already exists in {cfg.output_dir}", "pick another name=<new name>"
        )
    return _execute(cfg, None, out)


def resume(name: str, output_dir: Path, overrides: list[str], out: Any = sys.stdout) -> Summary:
    cfg = load_saved_config(name, output_dir, overrides)
    _check_study_storage(cfg)
    state = SweepState.load(cfg)
    if state is None:
        raise ConfigError(
            "name", f"sweep {name!r} never started its records", f"start it again with python -m sweeps run name={name}"
        )
    return _execute(cfg, state, out)


def _execute(cfg: SweepConfig, state: SweepState | None, out: Any) -> Summary:
    """Every check first (nothing written if one fails), then the sweep."""
    dataset = load_dataset(
        cfg.dataset.name,
        cfg.dataset.path,
        cfg.dataset.val_fraction,
        cfg.dataset.limit,
        cfg.seed,
        cfg.dataset.options,
        cfg.output_dir,
    )
    if state is not None and state.dataset_digest != dataset.digest:
        from sweeps.data.versions import what_changed

        raise ConfigError(
            "dataset",
            f"the data changed since sweep {cfg.name!r} started (digest {state.dataset_digest[:12]} -> {dataset.digest[:12]}"
            f"{what_changed(cfg.output_dir, state.dataset_digest, dataset)})",
            "restore the original data to resume, or start a new sweep on the new data with name=<new name>",
        )
    _check_feasible(cfg, dataset)
    warm = _load_warm_start(cfg) if state is None and cfg.warm_start.from_sweep else None
    # Heavy imports only once the input is known to be good.
    from sweeps.execution import runner, runtime
    from tracking import import_store_modules, unreachable

    tracking_uri = state.tracking_uri if state else cfg.tracking_uri
    problem = unreachable(tracking_uri)
    if problem:
        raise ConfigError(
            "tracking.uri", problem, "start the server (python -m mlflow server ...) or set tracking.uri=null for the local store"
        )
    # Starting Ray mostly waits on its processes: import the store modules meanwhile (joined before
    # any other import can race with them).
    importing = threading.Thread(target=import_store_modules, name="import-stores", daemon=True)
    importing.start()
    try:
        runtime.start_ray(cfg)  # before any write: a GPU the cluster lacks is bad input too
        if dataset.stream is not None:  # every node reads the folder itself
            runtime.check_nodes_see(dataset.stream.sample_paths(), str(cfg.dataset.path))
    finally:
        importing.join()
    try:
        if state is None:
            _prepare_output(cfg)
        with _driver_lock(cfg):
            return _sweep(cfg, _state_under_lock(cfg, state), dataset, tracking_uri, runner, out, warm)
    finally:
        runtime.shutdown()
        close_storages()


def _load_warm_start(cfg: SweepConfig) -> Any:
    """The earlier sweep's trials that warm_start.from_sweep adds (sweeps.driver.warmstart), read before
    anything is written; bad input stops the run here."""
    from sweeps.driver.warmstart import FIELD, load_warm_start

    source = cfg.warm_start.from_sweep
    assert source is not None
    if cfg.tracking.study_storage is None and not (cfg.output_dir / "optuna.db").exists():
        raise ConfigError(
            FIELD, f"no sweep named {source!r}: {cfg.output_dir} holds no sweeps yet", "run that sweep first in this output_dir"
        )
    saved_path = cfg.output_dir / "sweeps" / source / "config.yaml"
    saved = yaml.safe_load(saved_path.read_text()) if saved_path.is_file() else None
    names = None
    if isinstance(saved, dict):
        names = [str(o).partition(":")[0] for o in saved["objectives"]] if saved.get("objectives") else [saved.get("metric")]
    return load_warm_start(
        source,
        cfg.name,
        open_storage(cfg.output_dir, cfg.tracking.study_storage),
        cfg.space,
        cfg.objectives,
        names,
        cfg.warm_start.rerun_best,
    )


def _sweep(
    cfg: SweepConfig, state: SweepState | None, dataset: Dataset, tracking_uri: str, runner: Any, out: Any, warm: Any = None
) -> Summary:
    from tracking import SweepTracker

    started = time.monotonic()
    with _stores_lock(cfg.output_dir):
        # Two sweeps starting at once on fresh stores would both create the sqlite tables (and on
        # PostgreSQL, from two output folders, the tables and the experiment: `initialising`).
        with initialising(tracking_uri):
            tracker = SweepTracker(
                tracking_uri, cfg.tracking.experiment, cfg.output_dir / "mlartifacts", journal_dir=cfg.sweep_dir / "journal"
            )
        open_storage(cfg.output_dir, cfg.tracking.study_storage)
    if state is None:
        parent = tracker.start_sweep(
            cfg.name, redact(_params(cfg)), _tags(cfg, dataset, warm), yaml.safe_dump(redact(cfg.resolved), sort_keys=False)
        )
        state = SweepState(parent, tracker.experiment_id, tracking_uri, dataset.digest, fingerprint(cfg))
        _atomic_write(cfg.sweep_dir / "config.yaml", yaml.safe_dump(redact(cfg.resolved), sort_keys=False))
        state.save(cfg)
        resuming = False
    else:
        tracker.reopen_sweep(state.parent_run_id)
        state = SweepState(**{**asdict(state), "segments": state.segments + 1})
        state.save(cfg)
        resuming = True
    # From here every way out ends the parent run: FINISHED, FAILED with the error, KILLED on interrupt.
    previous = _sigterm_interrupts()
    try:
        return _run_and_summarise(cfg, state, resuming, tracker, dataset, tracking_uri, runner, out, started, warm)
    except KeyboardInterrupt:
        _end_parent(tracker, "KILLED", {"sweeps.state": "KILLED"})
        raise
    except BaseException as exc:
        last = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1][:500]
        _end_parent(
            tracker,
            "FAILED",
            {"sweeps.state": "FAILED", "sweeps.error": last, "sweeps.error_type": type(exc).__name__},
            "".join(traceback.format_exception(exc)),
        )
        raise
    finally:
        if previous is not False:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _sigterm_interrupts() -> Any:
    """SIGTERM (`kill`, `ray job stop`, a scheduler's time limit) ends the sweep as Ctrl+C does,
    so its run ends KILLED; returns the handler it replaced (False off the main thread: none set)."""
    if threading.current_thread() is not threading.main_thread():
        return False

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def _end_parent(tracker: Any, status: str, tags: dict[str, str], error: str | None = None) -> None:
    """End the parent run after an error; a store that fails now must not hide the first error."""
    from tracking import RunStatus

    try:
        tracker.end_sweep({}, tags, RunStatus(status), error=error)
    except Exception as exc:  # the store itself may be what failed
        print(
            f"warning: the sweep's MLflow run {tracker.parent_run_id} could not be ended {status} ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )


def _run_and_summarise(
    cfg: SweepConfig,
    state: SweepState,
    resuming: bool,
    tracker: Any,
    dataset: Dataset,
    tracking_uri: str,
    runner: Any,
    out: Any,
    started: float,
    warm: Any = None,
) -> Summary:
    import optuna

    from sweeps.core.outcomes import Outcome
    from sweeps.driver.progress import Progress
    from sweeps.driver.recovery import counted, interrupted, reconcile
    from sweeps.execution import runtime
    from sweeps.testing import faults
    from sweeps.worker.trainable import TrialSettings
    from tracking import RunStatus, get_run

    continuations: list[Any] = []
    study = None
    if not resuming:
        tracker.log_dataset(state.parent_run_id, dataset.x_train, dataset.y_train, dataset.name, dataset.source, dataset.digest)
        record_folder(dataset, cfg.output_dir, tracker, state.parent_run_id)
        _save_view(cfg, tracker)
    else:
        replayed = tracker.replay_journal()  # what the killed driver had queued but not written
        tracker.use_dataset(dataset.x_train, dataset.y_train, dataset.name, dataset.source, dataset.digest)
        study = optuna.load_study(study_name=cfg.name, storage=open_storage(cfg.output_dir, cfg.tracking.study_storage))
        parent = get_run(tracking_uri, state.parent_run_id)
        # PBT's members are not continued: a member's clones are no one Optuna trial's history
        # (runner.Population); its interrupted members are recorded so, and new ones drawn.
        limit = 0 if cfg.scheduler.name == "pbt" else cfg.n_trials - counted(study)
        continuations = interrupted(study, parent, tracking_uri, limit)
        for c in continuations:  # epochs its snapshot holds that never reached the store
            for epoch, values in c.missing:
                if c.run_id:
                    tracker.log_metrics(c.run_id, values, step=epoch)
        mended = reconcile(study, tracker, parent, Outcome.INTERRUPTED, keep={c.number for c in continuations})
        going_on = ", ".join(f"#{c.number} from epoch {c.epoch + 1}" for c in continuations)
        redone = sum(c.redone for c in continuations)
        print(
            f"Resuming sweep {cfg.name}: {counted(study)} of {cfg.n_trials} trials done"
            + (f"; continuing {len(continuations)} interrupted ({going_on})" if continuations else "")
            + (f"; {redone} epochs that finished before the stop are trained again (no snapshot held them)" if redone else "")
            + (f"; {mended} interrupted ones recorded as failed" if mended else "")
            + (f"; {replayed} values the stopped driver had queued now written" if replayed else ""),
            file=out,
            flush=True,
        )
    for warning in cfg.space.warnings:
        print(f"warning: space.{warning}", file=sys.stderr)
    if warm is not None:
        print(f"Warm start: {warm.note()}", file=out, flush=True)
    remaining = cfg.n_trials - (counted(study) if study is not None else 0)
    print(
        f"Sweep {cfg.name}: {remaining} trials to run on {dataset.name} ({len(dataset.x_train)} train / {len(dataset.x_val)} val, "
        f"digest {dataset.digest[:12]}), MLflow run {state.parent_run_id}",
        file=out,
        flush=True,
    )

    settings = TrialSettings(
        model={**cfg.model, **cfg.space.fixed},
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        objectives=cfg.objectives,
        max_epochs=cfg.max_epochs,
        seed=cfg.seed,
        cpus=max(1, int(cfg.resources.cpus_per_trial)),
        gpu_fraction=cfg.resources.gpus_per_trial,
        max_params=cfg.space.max_params,
        max_flops=cfg.space.max_flops,
        checkpoint_every_s=cfg.resources.checkpoint_every_s,
    )
    progress = Progress(total=remaining, metric=cfg.metric, mode=cfg.mode, out=out)

    stopped_because, goal_reached, moved = None, None, {}
    if remaining > 0:
        result = runner.run_sweep(
            cfg,
            dataset.arrays(),
            settings,
            tracker,
            progress,
            n_trials=remaining,
            experiment=cfg.name if state.segments == 1 else f"{cfg.name}-resume{state.segments - 1}",
            continuations=tuple(continuations),
            warm_start=warm.trials if warm is not None else (),
            rerun=warm.rerun if warm is not None else (),
        )
        study, stopped_because, goal_reached = result.study, result.stopped_because, result.goal_reached
        runtime.release()
        # What was measured: the dataset's size in the object store and the nodes that ran trials
        # (bytes moved per node are not measured, so no figure claims them).
        moved = {"data_bytes": result.data_bytes, "data_nodes": result.data_nodes}
    tracker.flush()  # every queued value in the store before it is read back
    assert study is not None
    reconcile(study, tracker, get_run(tracking_uri, state.parent_run_id), Outcome.NOT_RUN)
    faults.at_driver(point="summary")
    summary = replace(_summarise(cfg, study, tracker, dataset, started, stopped_because), goal_reached=goal_reached)
    plots = _log_report(cfg, tracking_uri, out) if cfg.tracking.log_report else []
    tracker.describe(state.parent_run_id, _story(cfg, tracker, summary, dataset, plots))
    status = RunStatus.FINISHED if stopped_because is None else RunStatus.FAILED
    tracker.end_sweep(
        {
            f"best_{cfg.metric}": summary.best_value if summary.best_value is not None else float("nan"),
            "wall_time_s": summary.wall_time_s,
            **moved,
            **{f"trials_{k.lower()}": v for k, v in summary.counts.items()},
        },
        {
            "sweeps.best_run_id": summary.best_run_id or "",
            "sweeps.best_model_uri": summary.model_uri or "",
            "sweeps.study": summary.study_url,
            "sweeps.objectives": ",".join(f"{m}:{d}" for m, d in cfg.objectives),
            "sweeps.segments": str(state.segments),
            "sweeps.state": status.value,
            **({"sweeps.stopped_because": stopped_because} if stopped_because else {}),
            **({"sweeps.ended_because": goal_reached} if goal_reached else {}),
            **({"sweeps.pareto_trials": ",".join(str(p["number"]) for p in summary.pareto)} if summary.pareto else {}),
        },
        status,
    )
    return summary


def _log_report(cfg: SweepConfig, tracking_uri: str, out: Any) -> list[str]:
    """The report's plots on the parent run, so the MLflow UI shows them; a plot that cannot be
    drawn must not turn a finished sweep into a failed one. Returns the logged artifact paths."""
    from sweeps.commands.report import make_report
    from sweeps.testing import faults

    faults.at_driver(point="report")
    try:
        report = make_report(cfg.name, cfg.output_dir, tracking_uri, cfg.tracking.experiment, cfg.tracking.study_storage)
        print(f"Report: {len(report.files)} files in {report.directory} (python -m sweeps report {cfg.name})", file=out)
        return list(report.logged)
    except Exception as exc:  # plotting libraries fail in many ways; the sweep's records are intact
        print(
            f"warning: the report could not be written ({type(exc).__name__}: {exc}); try python -m sweeps report {cfg.name}",
            file=sys.stderr,
        )
        return []


def _story(cfg: SweepConfig, tracker: Any, summary: Summary, dataset: Dataset, plots: list[str]) -> str:
    """The parent run's description in the UI: best trial, counts, data version, how to rerun, plots."""
    from tracking.note import Best, SweepStory, sweep_note

    started_with = tracker.run_tags(summary.parent_run_id).get("sweeps.command")  # a resume reruns the first command
    best = (
        None
        if summary.best_number is None
        else Best(summary.best_number, float(summary.best_value), summary.best_params, summary.best_run_id)
    )  # type: ignore[arg-type]
    extra = (
        [f"**Best model:** `{summary.model_uri}`" + (f", registered as `{summary.registered}`" if summary.registered else ""), ""]
        if summary.model_uri
        else []
    )
    if summary.goal_reached:
        extra += [f"**Ended early, goal met:** {summary.goal_reached}", ""]
    return sweep_note(
        SweepStory(
            name=cfg.name,
            experiment_id=summary.experiment_id,
            run_id=summary.parent_run_id,
            metric=cfg.metric,
            mode=cfg.mode,
            counts=summary.counts,
            dataset=dataset.summary(),
            command=started_with or _command(cfg),
            commit=_git_commit(),
            best=best,
            plots=plots,
            stopped_because=summary.stopped_because,
            extra=extra,
        )
    )


def _save_view(cfg: SweepConfig, tracker: Any) -> None:
    """The runs table as this sweep's user wants it: its objectives and searched params as columns."""
    from sweeps.worker.trainable import EPOCH_METRICS, best_key
    from tracking.note import view_key

    metrics = [m for metric, _ in cfg.objectives for m in ((best_key(metric), metric) if metric in EPOCH_METRICS else (metric,))]
    tracker.save_runs_view(view_key(cfg.name), f"Sweep {cfg.name}: params and {cfg.metric}", list(cfg.space.searched), metrics)


def _command(cfg: SweepConfig) -> str:
    """How to run this sweep again: its `python -m sweeps run` arguments, where it was started so;
    from Python, the arguments are unknown but the resolved config is on the run."""
    from tracking.note import reproduce_command

    if Path(sys.argv[0]).parts[-2:] == ("sweeps", "__main__.py") and sys.argv[1:2] == ["run"]:
        return reproduce_command(sys.argv[1:], cfg.name)
    return f"python -m sweeps run name={cfg.name}-again ...   # started from Python: the full config is config/resolved.yaml"


def _params(cfg: SweepConfig) -> dict[str, Any]:
    params = {k: v for k, v in flatten(cfg.resolved).items() if not k.startswith("space.")}
    params.update({f"space.{k}": v for k, v in cfg.space.describe().items()})
    return params


def _tags(cfg: SweepConfig, dataset: Dataset, warm: Any = None) -> dict[str, str]:
    tags = {
        "sweeps.name": cfg.name,
        "sweeps.sampler": cfg.sampler.name,
        "sweeps.scheduler": cfg.scheduler.name,
        "sweeps.command": _command(cfg),
        **dataset.summary(),
    }
    if cfg.warm_start.points:  # where the warm start came from
        tags["sweeps.warm_start"] = (
            f"{len(cfg.warm_start.points)} given points, evaluated first: {json.dumps(list(cfg.warm_start.points))}"[:5000]
        )
    if warm is not None:  # which sweep, how many trials, what was dropped
        tags["sweeps.warm_start_from"] = warm.source
        tags["sweeps.warm_start_trials"] = str(len(warm.trials))
        tags["sweeps.warm_start_note"] = warm.note()[:5000]
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def _summarise(
    cfg: SweepConfig, study: Any, tracker: Any, dataset: Dataset, started: float, stopped_because: str | None
) -> Summary:
    import optuna
    from optuna.study._multi_objective import _get_pareto_front_trials_by_trials

    from sweeps.core.outcomes import outcome_of
    from sweeps.driver.warmstart import own_trials

    trials = own_trials(study.get_trials(deepcopy=False))  # not those a warm start added
    counts = Counter(outcome_of(t).value for t in trials)
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    front = _get_pareto_front_trials_by_trials(completed, study.directions) if completed else []
    # The best trial (whose model is kept) is the front's best on the first objective.
    best = (max if cfg.mode == "max" else min)(front, key=lambda t: t.values[0]) if front else None
    pareto = (
        tuple(
            {
                "number": t.number,
                "values": dict(zip([m for m, _ in cfg.objectives], t.values)),
                "params": t.params,
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
            }
            for t in sorted(front, key=lambda t: t.number)
        )
        if cfg.multi_objective
        else ()
    )
    if pareto:
        tracker.log_dict(
            tracker.parent_run_id, {"objectives": [list(o) for o in cfg.objectives], "front": list(pareto)}, "pareto_front.json"
        )
    model_uri = registered = None
    best_run_id = best.user_attrs.get("mlflow_run_id") if best else None
    checkpoint = Path(best.user_attrs.get("checkpoint", "")) if best else None
    kept = test = None
    if best is not None and (cfg.tracking.log_best_model or dataset.has_test) and checkpoint and checkpoint.is_file():
        from models.conv2d import load_model

        kept = load_model(checkpoint)
    version = None
    if kept is not None and cfg.tracking.log_best_model and best_run_id:
        model_uri = tracker.log_keras_model(best_run_id, kept, dataset.preprocessing())
        if dataset.class_names:  # `predict` prints names, not indices
            tracker.set_model_tags(model_uri, {"sweeps.class_names": json.dumps(list(dataset.class_names), ensure_ascii=False)})
        if cfg.tracking.registered_model:
            from tracking import register_best_model

            version = register_best_model(
                tracker.tracking_uri, model_uri, cfg.tracking.registered_model, tags={"sweeps.name": cfg.name}
            )
            registered = f"models:/{cfg.tracking.registered_model}@champion (version {version})"
            tracker.set_tags(tracker.parent_run_id, {"sweeps.registered_model": registered})
    if kept is not None:  # the held-out split, once, on the kept model; never part of selection
        from sweeps.driver.testscore import score_best_model

        test = score_best_model(tracker, kept, dataset, (cfg.tracking.registered_model, version) if version else None)
    return Summary(
        name=cfg.name,
        wall_time_s=time.monotonic() - started,
        counts=dict(counts),
        best_number=best.number if best else None,
        best_value=best.values[0] if best else None,
        best_params=dict(best.params) if best else {},
        best_run_id=best_run_id,
        model_uri=model_uri,
        parent_run_id=tracker.parent_run_id,
        experiment_id=tracker.experiment_id,
        tracking_uri=tracker.tracking_uri,
        metric=cfg.metric,
        study_url=storage_url(cfg.output_dir, cfg.tracking.study_storage),
        objectives=cfg.objectives,
        pareto=pareto,
        stopped_because=stopped_because,
        registered=registered,
        test_accuracy=test.accuracy if test is not None else None,
    )
