"""One sweep from validated config to summary: dataset, tracker, Ray run, best model, report.

Everything that can be wrong with the input is checked before the first record is written.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.config import ConfigError, SweepConfig
from sweeps.datasets import Dataset, load_dataset
from sweeps.search import storage_url, study_exists
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

    def text(self) -> str:
        c = self.counts
        lines = [
            f"Sweep {self.name} finished in {self.wall_time_s:.1f} s",
            f"Trials: {sum(c.values())} | completed {c.get('COMPLETE', 0)} | stopped early {c.get('PRUNED', 0)}"
            f" | infeasible {c.get('INFEASIBLE', 0)} | failed {c.get('FAILED', 0) + c.get('NOT_RUN', 0)}",
        ]
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
        if self.model_uri:
            lines.append(f"Best model: {self.model_uri}")
        lines.append(f"MLflow UI: {ui_command(self.tracking_uri)}")
        lines.append(f"  then open {ui_url(self.tracking_uri, self.experiment_id, self.parent_run_id)}   (or: python -m sweeps ui)")
        lines.append(f"Optuna study '{self.name}': {self.study_url}")
        return "\n".join(lines)


def ui_command(tracking_uri: str, port: int = 5000) -> str:
    if tracking_uri.startswith("http"):
        return f"already served at {tracking_uri}"
    return f"{sys.executable} -m mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port {port}"


def ui_url(tracking_uri: str, experiment_id: str, run_id: str, port: int = 5000) -> str:
    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else f"http://127.0.0.1:{port}"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


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
        raise ConfigError("output_dir", f"{cfg.output_dir} is not writable ({exc.strerror})", "set output_dir=<a folder you can write> or SWEEPS_OUTPUT_DIR") from None


def prepare(cfg: SweepConfig) -> Dataset:
    """Every check on the input, before anything is written: dataset, name, output folder."""
    dataset = load_dataset(cfg.dataset.name, cfg.dataset.path, cfg.dataset.val_fraction, cfg.dataset.limit, cfg.seed)
    if study_exists(cfg.output_dir, cfg.name):
        raise ConfigError("name", f"a sweep named {cfg.name!r} already exists in {cfg.output_dir}", "pick another name=<new name>")
    _prepare_output(cfg)
    return dataset


def run(cfg: SweepConfig, out: Any = sys.stdout) -> Summary:
    """Run a whole sweep; the config is already validated."""
    dataset = prepare(cfg)
    # Heavy imports only once the input is known to be good.
    from sweeps import runner
    from sweeps.trial import TrialSettings
    from tracking import RunStatus, SweepTracker, default_tracking_uri

    started = time.monotonic()
    tracking_uri = cfg.tracking.uri or default_tracking_uri(cfg.output_dir)
    tracker = SweepTracker(tracking_uri, cfg.tracking.experiment, cfg.output_dir / "mlartifacts")
    params = {k: v for k, v in flatten(cfg.resolved).items() if not k.startswith("space.")}
    params.update({f"space.{k}": v for k, v in cfg.space.describe().items()})
    tags = {
        "sweeps.name": cfg.name, "sweeps.sampler": cfg.sampler.name, "sweeps.scheduler": cfg.scheduler.name,
        **dataset.summary(),
    }
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    parent = tracker.start_sweep(cfg.name, params, tags, cfg.to_yaml())
    tracker.log_dataset(parent, dataset.x_train, dataset.y_train, dataset.name, dataset.source, dataset.digest)
    for warning in cfg.space.warnings:
        print(f"warning: space.{warning}", file=sys.stderr)
    print(f"Sweep {cfg.name}: {cfg.n_trials} trials on {dataset.name} ({len(dataset.x_train)} train / {len(dataset.x_val)} val, digest {dataset.digest[:12]}), MLflow run {parent}", file=out, flush=True)

    settings = TrialSettings(
        model={**cfg.model, **cfg.space.fixed}, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
        objectives=cfg.objectives, max_epochs=cfg.max_epochs, seed=cfg.seed,
        cpus=max(1, int(cfg.resources.cpus_per_trial)),
        max_params=cfg.space.max_params, max_flops=cfg.space.max_flops,
    )
    done: Counter[str] = Counter()

    def progress(outcome: str) -> None:
        done[outcome] += 1
        print(f"  [{sum(done.values())}/{cfg.n_trials}] {outcome.lower()}  ({time.monotonic() - started:.0f} s)", file=out, flush=True)

    status = RunStatus.FAILED
    try:
        result = runner.run_sweep(cfg, dataset.arrays(), settings, tracker, progress)
        summary = _summarise(cfg, result, tracker, dataset, started)
        status = RunStatus.FINISHED
    except KeyboardInterrupt:
        status = RunStatus.KILLED
        raise
    finally:
        runner.shutdown()
        if status is not RunStatus.FINISHED:
            tracker.end_sweep({}, {"sweeps.state": status.value}, status)
    tracker.end_sweep(
        {f"best_{cfg.metric}": summary.best_value if summary.best_value is not None else float("nan"),
         "wall_time_s": summary.wall_time_s, **{f"trials_{k.lower()}": v for k, v in summary.counts.items()}},
        {"sweeps.best_run_id": summary.best_run_id or "", "sweeps.best_model_uri": summary.model_uri or "",
         "sweeps.study": summary.study_url, "sweeps.objectives": ",".join(f"{m}:{d}" for m, d in cfg.objectives),
         **({"sweeps.pareto_trials": ",".join(str(p["number"]) for p in summary.pareto)} if summary.pareto else {})},
        RunStatus.FINISHED,
    )
    return summary


def _summarise(cfg: SweepConfig, result: Any, tracker: Any, dataset: Dataset, started: float) -> Summary:
    import optuna

    trials = result.study.get_trials(deepcopy=False)
    counts = Counter(t.user_attrs.get("outcome", t.state.name) for t in trials)
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    front = result.study.best_trials if completed else []
    # The best trial (whose model is kept) is the front's best on the first objective.
    best = (max if cfg.mode == "max" else min)(front, key=lambda t: t.values[0]) if front else None
    pareto = tuple(
        {"number": t.number, "values": dict(zip([m for m, _ in cfg.objectives], t.values)), "params": t.params,
         "mlflow_run_id": t.user_attrs.get("mlflow_run_id")}
        for t in sorted(front, key=lambda t: t.number)
    ) if cfg.multi_objective else ()
    if pareto:
        tracker.log_dict(tracker.parent_run_id, {"objectives": [list(o) for o in cfg.objectives], "front": list(pareto)}, "pareto_front.json")
    model_uri = None
    best_run_id = best.user_attrs.get("mlflow_run_id") if best else None
    if best is not None and cfg.tracking.log_best_model and best_run_id:
        checkpoint = result.checkpoints.get(best.user_attrs.get("tune_trial_id", ""))
        if checkpoint is not None and checkpoint.is_file():
            from models.conv2d import load_model

            model_uri = tracker.log_keras_model(best_run_id, load_model(checkpoint), dataset.x_val[:8])
    return Summary(
        name=cfg.name, wall_time_s=time.monotonic() - started, counts=dict(counts),
        best_number=best.number if best else None, best_value=best.values[0] if best else None,
        best_params=dict(best.params) if best else {}, best_run_id=best_run_id, model_uri=model_uri,
        parent_run_id=tracker.parent_run_id, experiment_id=tracker.experiment_id,
        tracking_uri=tracker.tracking_uri, metric=cfg.metric, study_url=storage_url(cfg.output_dir),
        objectives=cfg.objectives, pareto=pareto,
    )
