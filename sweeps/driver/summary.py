"""The summary of a finished sweep: what the terminal and the API return (best trial, against the baseline,
where to look), built from the study and the MLflow runs; the best model logged, registered and scored."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sweeps.config.validation import SweepConfig
from sweeps.core.records import CHECKPOINT_ATTR, OUTSIDE_ATTR, RUN_ID_ATTR
from sweeps.core.redaction import redact_text
from sweeps.data.datasets import Dataset
from sweeps.storage.storages import (
    storage_url,
)

AGAINST_BASELINE = "sweeps.against_baseline"  # the parent run's tag: the champion against the baseline, in words


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
    # Registration was asked for (tracking.registered_model) and the registry refused it: what failed and
    # the fix, in one line (the CLI's error, exit code 1). The sweep itself finished, its records kept.
    not_registered: str | None = None
    test_accuracy: float | None = None  # the best model's score on the held-out test split, if any
    versus: Any = None  # tracking.note.Versus: the champion against the baseline (baseline=true)
    refit: Any = None  # tracking.note.RefitStory (refit=true)

    def text(self) -> str:
        c = self.counts
        lines = [
            f"Sweep {self.name} finished in {self.wall_time_s:.1f} s",
            f"Trials: {sum(c.values())} | completed {c.get('COMPLETE', 0)} | stopped early {c.get('PRUNED', 0)}"
            f" | infeasible {c.get('INFEASIBLE', 0)} (redrawn, not counted) | failed {c.get('FAILED', 0) + c.get('INTERRUPTED', 0)}"
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
        if self.versus is not None or self.refit is not None:
            from tracking.note import refit_lines, versus_lines

            lines += versus_lines(self.versus) if self.versus is not None else []
            lines += refit_lines(self.refit) if self.refit is not None else []
        refit_registered = self.refit is not None and self.refit.registered
        if self.model_uri:
            lines.append(
                f"Best model: {self.model_uri}"
                + (f", registered as {self.registered}" if self.registered and not refit_registered else "")
                + (", not registered (the error below says why)" if self.not_registered else "")
            )
        lines.append(f"MLflow UI: {redact_text(ui_command(self.tracking_uri))}")
        lines.append(
            f"  then open {ui_url(self.tracking_uri, self.experiment_id, self.name)}   (the trials; or: python -m sweeps ui)"
        )
        lines.append(f"  the sweep's run: {ui_url(self.tracking_uri, self.experiment_id, self.name, run_id=self.parent_run_id)}")
        lines.append(f"Optuna study '{self.name}': {redact_text(self.study_url)}")
        return "\n".join(lines)


def ui_command(tracking_uri: str, port: int = 5000) -> str:
    if tracking_uri.startswith("http"):
        return f"already served at {tracking_uri}"
    return f"{sys.executable} -m mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port {port}"


def ui_url(tracking_uri: str, experiment_id: str, sweep: str, port: int = 5000, run_id: str | None = None) -> str:
    """The sweep's trials in the UI's runs table (its saved view), or the page of run `run_id`."""
    from tracking.note import experiment_link, run_link, view_key

    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else f"http://127.0.0.1:{port}"
    page = run_link(experiment_id, run_id) if run_id else experiment_link(experiment_id, "/runs", view_key(sweep))
    return f"{base}/{page}"


def crown_champion(
    tracker: Any, model_uri: str, cfg: SweepConfig, refit: bool = False
) -> tuple[str | None, str | None, str | None]:
    """The one place a model becomes the sweep's champion (tracking.models.crown): today the best
    trial's kept checkpoint; a refit after the search hands its own model here instead.

    Returns (the registration, its version, None), or (None, None, the error line) when the registry
    refuses the model: registering is a step after a sweep that finished, so its failure does not
    fail the sweep (its runs end as they are, the summary is printed), the CLI exits 1 with that line."""
    from tracking import RegistryError
    from tracking.models import crown

    try:
        registered, version = crown(
            tracker, model_uri, cfg.tracking.registered_model, cfg.name, {"sweeps.refit": "true" if refit else "false"}
        )
    except RegistryError as exc:
        return (
            None,
            None,
            f"tracking.registered_model: the sweep finished and its trials are recorded, but its best model was not"
            f" registered: {exc}. Fix: a name the registry accepts (tracking.registered_model=<name>), or"
            f" tracking.registered_model=null to keep the model logged ({model_uri}) without registering it",
        )
    return registered, version, None


def _summarise(
    cfg: SweepConfig, study: Any, tracker: Any, dataset: Dataset, started: float, stopped_because: str | None
) -> Summary:
    import optuna
    from optuna.study._multi_objective import _get_pareto_front_trials_by_trials

    from sweeps.core.outcomes import outcome_of
    from sweeps.driver.champion import full_params
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
                "mlflow_run_id": t.user_attrs.get(RUN_ID_ATTR),
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
    best_run_id = best.user_attrs.get(RUN_ID_ATTR) if best else None
    checkpoint = Path(best.user_attrs.get(CHECKPOINT_ATTR, "")) if best else None
    kept = test = None
    # The champion: the best trial's kept checkpoint, logged as a model with the others (worst first).
    if cfg.tracking.log_best_model:
        tracker.log_kept_models()
    if best is not None and cfg.tracking.log_best_model and best_run_id:
        model_uri = tracker.checkpoint_model(best_run_id)
    wanted = cfg.tracking.log_best_model or dataset.has_test
    needs_model = (cfg.tracking.log_best_model and model_uri is None) or dataset.has_test
    if best is not None and needs_model and checkpoint and checkpoint.is_file():
        from models.conv2d import load_model

        kept = load_model(checkpoint)
    # refit=true: the champion's params on train + validation for its best epoch count (sweeps.driver.champion).
    refit = refit_story = None
    if cfg.refit and best is not None and wanted:
        from sweeps.driver.champion import refit_champion
        from tracking.note import RefitStory

        made = refit_champion({**cfg.model, **cfg.space.fixed}, best, dataset, cfg.seed)
        if isinstance(made, str):
            refit_story = RefitStory(skipped=made)
        else:
            refit, epochs, images = made
            refit_story = RefitStory(epochs=epochs, images=images)
    version = refit_uri = not_registered = None
    names = {"sweeps.class_names": json.dumps(list(dataset.class_names), ensure_ascii=False)} if dataset.class_names else {}
    if model_uri is None and kept is not None and cfg.tracking.log_best_model and best_run_id:
        from tracking.models import model_name

        # Not logged as the search ended (a sweep resumed from before models were logged so): log it now.
        model_uri = tracker.log_keras_model(best_run_id, kept, dataset.preprocessing(), name=model_name(cfg.name, best.number))
        if names:  # `predict` prints names, not indices
            tracker.set_model_tags(model_uri, names)
    if refit is not None and cfg.tracking.log_best_model:  # on the sweep's run: trained by no trial
        from tracking.models import ROLE_TAG, SOURCE_NAME_TAG, SWEEP_TAG, source_name

        refit_uri = tracker.log_keras_model(tracker.parent_run_id, refit, dataset.preprocessing(), name=f"{cfg.name}-refit")
        # Found with the sweep's other models (`sweeps.sweep(name).models`, the Models tab's filter on
        # sweeps.name); its source there is the sweep's command, as the kept checkpoints' is.
        tags = {
            SWEEP_TAG: cfg.name,
            ROLE_TAG: "refit",
            "sweeps.refit_of": str(best.number),
            SOURCE_NAME_TAG: source_name(cfg.name),
        }
        tracker.set_model_tags(refit_uri, {**names, **tags})
    delivered = refit_uri or model_uri
    if delivered is not None:
        registered, version, not_registered = crown_champion(tracker, delivered, cfg, refit=refit_uri is not None)
    from sweeps.driver.testscore import score_best_model

    on_registry = (cfg.tracking.registered_model, version) if version else None
    # The held-out split, once per model, never part of selection: the champion's own checkpoint as
    # test_*, the refit model as refit_test_* (the registered one's scores on its version).
    if kept is not None:
        test = score_best_model(tracker, kept, dataset, None if refit_uri else on_registry)
    if refit is not None and refit_story is not None:
        refit_test = score_best_model(tracker, refit, dataset, on_registry if refit_uri else None, prefix="refit_")
        refit_story = replace(
            refit_story,
            test=refit_test.accuracy if refit_test is not None else None,
            champion_test=test.accuracy if test is not None else None,
            registered=registered if refit_uri else None,
        )
        tracker.log_metrics(tracker.parent_run_id, {"refit_epochs": float(refit_story.epochs)})
    if refit_story is not None:
        from tracking.note import refit_lines

        tracker.set_tags(tracker.parent_run_id, {"sweeps.refit": " ".join(refit_lines(refit_story))[:5000]})
    versus = _versus(cfg, trials, best, dataset, tracker, test)
    return Summary(
        name=cfg.name,
        wall_time_s=time.monotonic() - started,
        counts=dict(counts),
        best_number=best.number if best else None,
        best_value=best.values[0] if best else None,
        best_params=full_params(best) if best else {},
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
        not_registered=not_registered,
        test_accuracy=test.accuracy if test is not None else None,
        versus=versus,
        refit=refit_story,
    )


def _versus(cfg: SweepConfig, trials: list, best: Any, dataset: Dataset, tracker: Any, test: Any) -> Any:
    """The champion against the baseline (sweeps.driver.champion); the baseline's model test-scored once,
    as baseline_test_*, when it is not the champion itself. None: the sweep ran no baseline."""
    from sweeps.driver.champion import baseline_of, best_validation, versus
    from sweeps.space import baseline_point

    baseline = baseline_of(trials)
    if baseline is None:
        return None
    baseline_test = test.accuracy if test is not None and best is not None and best.number == baseline.number else None
    checkpoint = Path(baseline.user_attrs.get(CHECKPOINT_ATTR, ""))
    if baseline_test is None and dataset.has_test and baseline.user_attrs.get(CHECKPOINT_ATTR) and checkpoint.is_file():
        from models.conv2d import load_model
        from sweeps.driver.testscore import score_best_model

        scored = score_best_model(tracker, load_model(checkpoint), dataset, None, prefix="baseline_")
        baseline_test = scored.accuracy if scored is not None else None
    value = best_validation(baseline, cfg.mode)
    tracker.set_tags(tracker.parent_run_id, {"sweeps.baseline_trial": str(baseline.number)})
    if value is not None:
        tracker.log_metrics(tracker.parent_run_id, {f"baseline_{cfg.metric}": value})
    from tracking.note import versus_lines

    notes = baseline_point(cfg.model, cfg.space).notes if baseline.user_attrs.get(OUTSIDE_ATTR) else ()
    found = versus(
        cfg.metric, cfg.mode, baseline, best, baseline_test, test.accuracy if test is not None else None, dataset.has_test, notes
    )
    # `report` reads it back: one line per sentence.
    tracker.set_tags(tracker.parent_run_id, {AGAINST_BASELINE: "\n".join(versus_lines(found))[:5000]})
    return found
