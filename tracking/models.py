"""The sweep's models as MLflow 3 sees models: every kept checkpoint a `LoggedModel` (named after the
sweep and its trial, logged at its best epoch, with the trial's params and its metrics linked to
the model and to the dataset version), and the champion linked to the sweep's parent run.

The experiment's Models tab and `mlflow.search_logged_models` rank these by their metrics. A
checkpoint that retention (`resources.keep_checkpoints`) deletes has its logged model deleted too,
so no model whose files are gone is offered.

A checkpoint's package is written here without Keras: the checkpoint's `model.keras` file is the
model, and the MLmodel file around it is what `mlflow.keras.log_model` would write for it (the
keras flavor and pyfunc, a signature, the installed versions as requirements, and our
preprocessing in its metadata). The driver never loads a model to log it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, Metric

from tracking.query import quote

# Tags of a sweep's logged models: which sweep, which trial (searchable from code and in the UI).
SWEEP_TAG = "sweeps.name"
TRIAL_TAG = "sweeps.trial"
ROLE_TAG = "sweeps.model"  # "checkpoint" (a kept trial's best epoch) or "champion" (set on the crowned one)
SOURCE_NAME_TAG = "mlflow.source.name"  # the UI's "Source" of a model or run
SOURCE_TYPE_TAG = "mlflow.source.type"
MODEL_TYPE = "keras-conv2d"

REGISTRATION_ERROR_TAG = "sweeps.registration_error"  # on the parent run: why the champion is not registered


def model_name(sweep: str, number: int) -> str:
    """The logged model's name: the sweep and the trial (`digits-small-trial-007`)."""
    return f"{sweep}-trial-{number:03d}"


def source_name(sweep: str) -> str:
    """What the UI shows as a sweep's models' and runs' source: the command, not `__main__.py`.
    (The UI shows a local source's last path segment, so it holds no path.)"""
    return f"python -m sweeps run name={sweep}"


@dataclass(frozen=True)
class ModelContext:
    """What every logged model of a sweep shares, given once by the driver before trials run."""

    sweep: str
    experiment_id: str
    input_shape: tuple[int, ...]
    num_classes: int
    dataset_name: str
    dataset_digest: str
    preprocessing: Mapping[str, Any] | None = None
    class_names: Sequence[str] | None = None
    mode: str = "max"  # how the objective ranks models


def _requirements() -> list[str]:
    from tracking.tracker import _model_requirements

    return [f"mlflow=={_version('mlflow')}", *_model_requirements()]


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def write_keras_package(
    folder: Path,
    keras_file: Path,
    context: ModelContext,
    run_id: str | None = None,
    model_id: str | None = None,
) -> None:
    """An MLflow model folder around a saved `.keras` file, as `mlflow.keras.save_model` lays it out
    (data/model.keras, data/keras_module.txt, MLmodel, conda.yaml, python_env.yaml, requirements.txt),
    loadable by `mlflow.keras.load_model` and `tracking.load_model_and_preprocessing`."""
    import os

    import numpy as np
    import yaml
    from mlflow import pyfunc
    from mlflow.models import Model, ModelSignature
    from mlflow.types import Schema, TensorSpec
    from mlflow.utils.environment import _mlflow_conda_env, _PythonEnv

    from tracking.tracker import PREPROCESSING_KEY

    data = folder / "data"
    data.mkdir(parents=True)
    shutil.copyfile(keras_file, data / "model.keras")
    (data / "keras_module.txt").write_text("keras")
    model = Model(run_id=run_id, model_id=model_id)
    model.signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float32"), (-1, *context.input_shape))]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, context.num_classes))]),
    )
    if context.preprocessing:
        model.metadata = {PREPROCESSING_KEY: dict(context.preprocessing)}
    model.add_flavor(
        "keras",
        data="data",
        keras_version=_version("keras"),
        keras_backend=os.environ.get("KERAS_BACKEND", "tensorflow"),
        save_exported_model=False,
    )
    pyfunc.add_to_model(model, loader_module="mlflow.keras", conda_env="conda.yaml", python_env="python_env.yaml")
    model.model_size_bytes = (data / "model.keras").stat().st_size
    model.save(str(folder / "MLmodel"))
    requirements = _requirements()
    (folder / "requirements.txt").write_text("\n".join(requirements))
    with open(folder / "conda.yaml", "w") as handle:
        yaml.safe_dump(_mlflow_conda_env(additional_pip_deps=requirements[1:]), handle, default_flow_style=False)
    _PythonEnv.current().to_yaml(str(folder / "python_env.yaml"))


def checkpoint_metrics(state_file: Path, objective: str) -> tuple[int, dict[str, float]]:
    """The best epoch of a checkpoint (its `state.json`) and the metrics at that epoch: the epoch
    metrics as logged on the trial's run, and the objective's best (`best_<metric>`)."""
    state = json.loads(state_file.read_text())
    step = int(state["best_epoch"])
    at = next((h for h in state.get("history", []) if int(h.get("epoch", -1)) == step), {})
    epoch = {k: float(v) for k, v in at.items() if k != "epoch" and isinstance(v, int | float)}
    best = {f"best_{k}": float(v) for k, v in state.get("best", {}).items()}
    best.setdefault(f"best_{objective}", epoch.get(objective, float("nan")))
    # The objective first: the UI shows a model's metrics in the order they were logged.
    first = [f"best_{objective}", objective]
    values = {k: v for k, v in {**best, **epoch}.items() if k in first}
    values = {k: values[k] for k in first if k in values}
    values.update({k: v for k, v in {**best, **epoch}.items() if k not in first})
    return step, values


def log_checkpoint_model(
    client: MlflowClient,
    context: ModelContext,
    run_id: str,
    number: int,
    checkpoint: Path,
    params: Mapping[str, Any],
    objective: str,
) -> str | None:
    """Log the checkpoint folder of trial `number` (run `run_id`) as a logged model; returns its id,
    or None where the checkpoint is gone already (retention dropped it before this ran)."""
    from tracking.tracker import _param_text, redact

    model_file, state_file = checkpoint / "model.keras", checkpoint / "state.json"
    if not model_file.is_file() or not state_file.is_file():
        return None
    step, metrics = checkpoint_metrics(state_file, objective)
    logged = client.create_logged_model(
        context.experiment_id,
        name=model_name(context.sweep, number),
        source_run_id=run_id,
        tags={
            SWEEP_TAG: context.sweep,
            TRIAL_TAG: str(number),
            ROLE_TAG: "checkpoint",
            SOURCE_NAME_TAG: source_name(context.sweep),
            SOURCE_TYPE_TAG: "LOCAL",
            **({"sweeps.class_names": json.dumps(list(context.class_names), ensure_ascii=False)} if context.class_names else {}),
        },
        params={str(k): _param_text(v) for k, v in redact(dict(params)).items()},
        model_type=MODEL_TYPE,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="sweeps-model-") as tmp:
            write_keras_package(Path(tmp) / "model", model_file, context, run_id, logged.model_id)
            client.log_model_artifacts(logged.model_id, str(Path(tmp) / "model"))
    except FileNotFoundError:  # deleted while it was copied: never offered
        client.delete_logged_model(logged.model_id)
        return None
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_batch(run_id, metrics=_linked(client, run_id, step, metrics, logged.model_id, context), synchronous=True)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
    return logged.model_id


def _linked(
    client: MlflowClient, run_id: str, step: int, metrics: Mapping[str, float], model_id: str, context: ModelContext
) -> list[Metric]:
    """The metrics at `step` as the trial's run holds them (same timestamp and value), linked to the
    model and the dataset: the store links them to the model and, finding each point on the run
    already, adds nothing to the run's own history. A value the run lacks is logged now."""
    now, linked = int(time.time() * 1000), []
    for key, value in metrics.items():
        if value != value:  # NaN
            continue
        held = [m for m in client.get_metric_history(run_id, key) if m.step == step]
        point = held[-1] if held else None
        linked.append(
            Metric(
                key,
                point.value if point else value,
                point.timestamp if point else now,
                step,
                model_id=model_id,
                dataset_name=context.dataset_name,
                dataset_digest=context.dataset_digest,
            )
        )
    return linked


def delete_model(client: MlflowClient, model_id: str) -> None:
    """A logged model whose checkpoint retention deleted: its record (the Models tab and
    search_logged_models leave deleted models out) and its copied files."""
    model = client.get_logged_model(model_id)
    client.set_logged_model_tags(model_id, {ROLE_TAG: "deleted: not among the sweep's best resources.keep_checkpoints"})
    client.delete_logged_model(model_id)
    try:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        get_artifact_repository(model.artifact_location).delete_artifacts()
    except Exception as exc:  # a store that cannot delete (a read-only server): the record is gone all the same
        print(f"warning: the files of deleted model {model_id} stay in the store ({type(exc).__name__})", file=sys.stderr)


def find_checkpoint_model(client: MlflowClient, experiment_id: str, run_id: str) -> str | None:
    """The id of the logged model of the trial run `run_id`'s kept checkpoint (None: none logged)."""
    found = client.search_logged_models([experiment_id], filter_string=f"source_run_id = {quote(run_id)}")
    found = [m for m in found if m.tags.get(TRIAL_TAG) is not None]
    return max(found, key=lambda m: m.creation_timestamp).model_id if found else None


def link_champion(client: MlflowClient, parent_run_id: str, model_id: str) -> None:
    """The champion on the sweep's parent run: the run's page lists it under its logged models
    (the UI reads a run's model outputs), and with them the registered versions that name it."""
    model = client.get_logged_model(model_id)
    if model.source_run_id != parent_run_id:  # a model logged on the parent run (the refit) is its output already
        step = max((m.step for m in model.metrics or []), default=0)
        client.log_outputs(parent_run_id, [LoggedModelOutput(model_id, step)])
    client.set_logged_model_tags(model_id, {ROLE_TAG: "champion"})


def ranking(objective: str, mode: str) -> list[dict[str, Any]]:
    """search_logged_models' order_by for a sweep's objective: its best value first."""
    return [{"field_name": f"metrics.best_{objective}", "ascending": mode == "min"}]


def sweep_models(tracking_uri: str, experiment_id: str, sweep: str, objective: str, mode: str) -> Any:
    """The sweep's logged models as a DataFrame, ranked as search_logged_models ranks them by the
    objective: name, trial, step, model_id, uri, status, role, source_run_id, then one column per
    metric (its value at the model's step)."""
    import pandas as pd

    client = MlflowClient(tracking_uri=tracking_uri)
    rows, token = [], None
    while True:
        page = client.search_logged_models(
            [experiment_id],
            filter_string=f"tags.`{SWEEP_TAG}` = {quote(sweep)}",
            order_by=ranking(objective, mode),
            page_token=token,
        )
        for m in page:
            metrics = {x.key: x.value for x in sorted(m.metrics or [], key=lambda x: (x.step, x.timestamp))}
            rows.append(
                {
                    "name": m.name,
                    "trial": int(m.tags[TRIAL_TAG]) if m.tags.get(TRIAL_TAG, "").isdigit() else None,
                    "step": max((x.step for x in m.metrics or []), default=None),
                    "model_id": m.model_id,
                    "uri": m.model_uri,
                    "status": str(m.status),
                    "role": m.tags.get(ROLE_TAG, ""),
                    "source_run_id": m.source_run_id,
                    **metrics,
                }
            )
        token = page.token
        if not token:
            break
    columns = ["name", "trial", "step", "model_id", "uri", "status", "role", "source_run_id"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def crown(
    tracker: Any, model_uri: str, registered_model: str | None, sweep: str, tags: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """Make `model_uri` the sweep's champion, whatever model it is (a kept checkpoint's, or one the
    driver trained after the search, e.g. a refit on train plus validation): the parent run lists it
    as its logged model, and it becomes the new version of `registered_model` (if set) under the alias
    `champion`. Returns (the registration as the summary words it, the version), both None if unregistered.

    A registry that refuses it raises RegistryError, after the parent run records why (REGISTRATION_ERROR_TAG):
    the model stays logged and linked, the sweep's runs as they were."""
    from tracking.model_registry import DEFAULT_ALIAS, RegistryError, register_best_model

    model_id = model_uri[len("models:/") :].split("/", 1)[0] if model_uri.startswith("models:/m-") else None
    if model_id is not None:
        link_champion(tracker.client, tracker.parent_run_id, model_id)
    if not registered_model:
        return None, None
    try:
        version = register_best_model(tracker.tracking_uri, model_uri, registered_model, tags={SWEEP_TAG: sweep, **(tags or {})})
    except RegistryError as exc:
        tracker.set_tags(tracker.parent_run_id, {REGISTRATION_ERROR_TAG: str(exc)[:5000]})
        raise
    registered = f"models:/{registered_model}@{DEFAULT_ALIAS} (version {version})"
    tracker.set_tags(tracker.parent_run_id, {"sweeps.registered_model": registered})
    tracker.delete_tags(tracker.parent_run_id, [REGISTRATION_ERROR_TAG])  # an earlier segment's refusal, now mended
    return registered, version
