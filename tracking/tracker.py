"""MLflow records of a sweep, written from the driver only, so trials never contend for the store.

Every call names its run id explicitly (MlflowClient), never the implicit active run.
"""

from __future__ import annotations

import os
import re
import time
import traceback
import warnings
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

# MLflow refuses params longer than this; longer values are cut with a marker.
_PARAM_LIMIT = 6000
_BATCH = 100  # MLflow's limit on params per log_batch call


class RunStatus(str, Enum):
    FINISHED = "FINISHED"
    KILLED = "KILLED"
    FAILED = "FAILED"


def default_tracking_uri(output_dir: Path) -> str:
    return f"sqlite:///{(output_dir / 'mlflow.db').resolve()}"


def import_store_modules() -> None:
    """Import what opening a database-backed store needs (SQLAlchemy, Alembic, MLflow's SQL
    stores: ~0.9 s), so a caller can do it in the background while it waits on something else."""
    import importlib

    for module in ("mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store"):
        importlib.import_module(module)


def unreachable(tracking_uri: str, timeout_s: float = 5.0) -> str | None:
    """Why a tracking server cannot be used (None when it can), asked once before any trial runs,
    instead of MLflow's own retries discovering it an hour into the sweep."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    import requests

    try:
        response = requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s)
    except requests.RequestException as exc:
        return f"{tracking_uri} does not answer ({type(exc).__name__})"
    if response.status_code != 200:
        return f"{tracking_uri}/health answered HTTP {response.status_code}"
    # Credentials only from the environment, as MLflow's own client reads them.
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    try:
        # A real query: its first one opens the server's database and user store, which takes
        # seconds on a busy server (a 5 s read timeout failed there), so it gets longer.
        probe = requests.get(
            f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "Default"},
            auth=(user, password) if user and password else None, timeout=timeout_s * 6,
        )
    except requests.RequestException as exc:
        return f"{tracking_uri} does not answer a query ({type(exc).__name__})"
    if probe.status_code in (401, 403):
        return (f"{tracking_uri} refused the request (HTTP {probe.status_code}): "
                + ("wrong MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD" if user else "it needs MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment"))
    return None


_SECRET = re.compile(r"(password|passwd|secret|token|credential|(^|_)key)$", re.IGNORECASE)
REDACTED = "***"
# user:password@ in a database or server URL (postgresql://sweeps:secret@db/sweeps).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def hide_url_password(text: str) -> str:
    return _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", text)


def redact(value: Any, key: str = "") -> Any:
    """Blank out values whose key names a credential (password, token, secret, *_key), and the
    password in any URL, at any depth, so config params and artifacts never carry them."""
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, str):
        value = hide_url_password(value)
    leaf = key.rsplit(".", 1)[-1]
    return REDACTED if leaf and _SECRET.search(leaf) and value not in (None, "") else value


def _now_ms() -> int:
    return int(time.time() * 1000)


class SweepTracker:
    """Writes one sweep to an MLflow tracking store (a sqlite file or a tracking server)."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            # A local store's default artifact root is ./mlruns of the *current* folder: pin it.
            # A server (--serve-artifacts) chooses its own, so workers never need its disk.
            local = not tracking_uri.startswith(("http://", "https://"))
            location = artifact_root.resolve().as_uri() if artifact_root and local else None
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        self.parent_run_id: str | None = None
        self._dataset_input: DatasetInput | None = None
        self._pending: dict[str, list[Future[None]]] = {}  # run id -> writes not yet done
        self._writer: ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its callbacks, and so this tracker, with its experiment state; queued
        # writes belong to this process.
        return {**self.__dict__, "_pending": {}, "_writer": None}

    # ------------------------------------------------------------ sweep (parent run)

    def start_sweep(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str], config_yaml: str) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags={**tags, "sweeps.kind": "sweep"})
        self.parent_run_id = run.info.run_id
        self.log_params(self.parent_run_id, params)
        self.client.log_text(self.parent_run_id, config_yaml, "config/resolved.yaml")
        return self.parent_run_id

    def reopen_sweep(self, run_id: str) -> None:
        """Continue a sweep's parent run (resume after the driver died): it is RUNNING again."""
        self.parent_run_id = run_id
        self.client.update_run(run_id, status="RUNNING")

    def end_sweep(self, metrics: Mapping[str, float], tags: Mapping[str, str], status: RunStatus) -> None:
        assert self.parent_run_id is not None
        self.log_metrics(self.parent_run_id, metrics)
        self.set_tags(self.parent_run_id, tags)
        self.flush()
        self.client.set_terminated(self.parent_run_id, status=status.value)

    # ------------------------------------------------------------ trials (nested runs)

    def start_trial(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        assert self.parent_run_id is not None, "start_sweep first"
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={**tags, MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_RUN_NAME: name, "sweeps.kind": "trial"},
        )
        self.log_params(run.info.run_id, params)
        if self._dataset_input is not None:
            self.client.log_inputs(run.info.run_id, datasets=[self._dataset_input])
        return run.info.run_id

    def end_trial(self, run_id: str, status: RunStatus, tags: Mapping[str, str], error: BaseException | str | None = None) -> None:
        self.set_tags(run_id, tags)
        self.flush(run_id)
        if error is not None:
            text = error if isinstance(error, str) else "".join(traceback.format_exception(error))
            self.client.log_text(run_id, text, "error/traceback.txt")
        self.client.set_terminated(run_id, status=status.value)

    # ------------------------------------------------------------ values

    # Values are written by one background thread, in order, so the driver, and with it every
    # trial waiting for its next epoch, never waits for the store. A run is flushed before it
    # ends; a write that failed raises there. (MLflow's own async queue was tried: its flush
    # waited about 1 s per run, which held up Tune's loop at every trial's end.)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(str(k), _param_text(v)) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self._write(run_id, params=items[i : i + _BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = _now_ms()
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and np.isfinite(v)]
        if batch:
            self._write(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self._write(run_id, tags=[RunTag(k, hide_url_password(str(v))) for k, v in tags.items()])

    def flush(self, run_id: str | None = None) -> None:
        """Wait until the values queued for `run_id` (default: every run) are in the store."""
        for key in [run_id] if run_id is not None else list(self._pending):
            for write in self._pending.pop(key, []):
                write.result()

    def _write(self, run_id: str, **values: Any) -> None:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer")
        write = self._writer.submit(self.client.log_batch, run_id, synchronous=True, **values)
        self._pending.setdefault(run_id, []).append(write)

    def log_dict(self, run_id: str, value: Mapping[str, Any], path: str) -> None:
        self.client.log_dict(run_id, dict(value), path)

    # ------------------------------------------------------------ dataset and model

    def use_dataset(self, features: np.ndarray, targets: np.ndarray, name: str, source: str, digest: str) -> None:
        """Link every trial started from now on to the exact dataset version, identified by our own
        full-content digest (MLflow's own reads only the first 10,000 values)."""
        import mlflow.data

        dataset = mlflow.data.from_numpy(features, targets=targets, source=_dataset_source(source), name=name, digest=digest)
        self._dataset_input = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training")])

    def log_dataset(self, run_id: str, features: np.ndarray, targets: np.ndarray, name: str, source: str, digest: str) -> None:
        """`use_dataset`, and link `run_id` (the sweep's run) to it too."""
        self.use_dataset(features, targets, name, source, digest)
        assert self._dataset_input is not None
        self.client.log_inputs(run_id, datasets=[self._dataset_input])

    def log_keras_model(self, run_id: str, model: Any) -> str:
        """Log a Keras model with its signature; returns the model URI (runs:/<id>/model).

        The signature comes from the model's own input and output specs, and the requirements are
        the installed versions: MLflow would otherwise run the model once and load it again in a
        subprocess (a second TensorFlow import, ~5 s) to find the same facts.
        """
        import mlflow
        import mlflow.keras
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(model.inputs[0].dtype), (-1, *model.inputs[0].shape[1:]))]),
            outputs=Schema([TensorSpec(np.dtype(model.outputs[0].dtype), (-1, *model.outputs[0].shape[1:]))]),
        )
        mlflow.set_tracking_uri(self.tracking_uri)
        self.flush(run_id)
        # log_model works on the fluent active run; resume the (finished) trial run just for this.
        with mlflow.start_run(run_id=run_id):
            info = mlflow.keras.log_model(model, name="model", signature=signature, pip_requirements=_model_requirements())
        self.client.set_terminated(run_id, status=RunStatus.FINISHED.value)
        return info.model_uri


def _model_requirements() -> list[str]:
    """What serving a logged model needs: the versions installed here (MLflow adds itself)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("keras", "tensorflow", "numpy"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _PARAM_LIMIT else text[: _PARAM_LIMIT - 3] + "..."


def _dataset_source(source: str) -> Any:
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    with warnings.catch_warnings():
        # A package loader's name (sklearn.datasets.load_digits) matches several source kinds; any will do.
        warnings.simplefilter("ignore")
        return resolve_dataset_source(source)
