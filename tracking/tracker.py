"""MLflow records of a sweep, written from the driver only, so trials never contend for the store.

Every call names its run id explicitly (MlflowClient), never the implicit active run.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from sweeps.core.redaction import redact, redact_text

# Every param, tag, text and error message this module writes or raises passes through it.
from sweeps.core.sqlite import fast_commits
from sweeps.core.writebehind import WriteBehind

# MLflow refuses params longer than this; longer values are cut with a marker.
_PARAM_LIMIT = 6000
_BATCH = 100  # MLflow's limit on params per log_batch call
# MLflow 3's UI opens an experiment without this tag in its GenAI mode (traces, judges, prompts);
# with it, in "Model training": runs, charts, models. The UI reads the tag itself.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # a run's Markdown description in the UI
# A saved view of the runs table (the UI's "Views" menu, and ?viewStateShareKey=<key>): its columns.
VIEW_TAG = "mlflow.sharedViewState."


PREPROCESSING_KEY = "sweeps_preprocessing"  # in a logged model's MLmodel metadata


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

    for module in (
        "mlflow.store.db.utils",
        "mlflow.store.tracking.sqlalchemy_store",
        "mlflow.store.model_registry.sqlalchemy_store",
    ):
        importlib.import_module(module)


def unreachable(tracking_uri: str, timeout_s: float = 15.0) -> str | None:
    """Why a tracking server cannot be used (None when it can), asked once before any trial runs,
    instead of MLflow's own retries discovering it an hour into the sweep."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    import requests

    shown = redact_text(tracking_uri)
    # Credentials from the environment, as MLflow's own client reads them (or from the URI itself).
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    try:
        response = requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s)
        if response.status_code != 200:
            return f"{shown}/health answered HTTP {response.status_code}"
        # A second request, a real query: the server may fail between the two, which is the same
        # answer. Its first query opens the server's database and user store, which takes seconds
        # on a busy server (a 5 s read timeout failed there), so it waits longer.
        probe = requests.get(
            f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": "Default"},
            auth=(user, password) if user and password else None,
            timeout=timeout_s * 6,
        )
    except requests.RequestException as exc:
        return f"{shown} does not answer ({type(exc).__name__})"
    if probe.status_code in (401, 403):
        in_uri = "@" in tracking_uri.split("://", 1)[1].split("/", 1)[0]
        return f"{shown} refused the request (HTTP {probe.status_code}): " + (
            "wrong user or password in tracking.uri"
            if in_uri and not user
            else "wrong MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
            if user
            else "it needs MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment"
        )
    if probe.status_code >= 500:
        return f"{shown} failed to answer (HTTP {probe.status_code})"
    return None


def _shown(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as they may be written: through the one redaction step, whichever call writes them."""
    return {k: redact_text(str(v)) for k, v in redact(dict(tags)).items()}


def _now_ms() -> int:
    return int(time.time() * 1000)


class SweepTracker:
    """Writes one sweep to an MLflow tracking store (a sqlite file or a tracking server)."""

    def __init__(
        self, tracking_uri: str, experiment: str, artifact_root: Path | None = None, journal_dir: Path | None = None
    ) -> None:
        self.tracking_uri = tracking_uri
        self.journal = Journal(journal_dir) if journal_dir is not None else None
        if tracking_uri.startswith("sqlite"):
            fast_commits()
        self.client = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
            if found.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:  # made before the tag, or by hand
                self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        else:
            # A local store's default artifact root is ./mlruns of the *current* folder: pin it.
            # A server (--serve-artifacts) chooses its own, so workers never need its disk.
            local = not tracking_uri.startswith(("http://", "https://"))
            location = artifact_root.resolve().as_uri() if artifact_root and local else None
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}
            )
        self.parent_run_id: str | None = None
        self._dataset_input: DatasetInput | None = None
        self.writes = WriteBehind("mlflow-writer")  # keyed by run id
        self.models: Any = None  # tracking.models.ModelContext: kept checkpoints are logged models
        self.model_ids: dict[str, str] = {}  # trial run id -> its kept checkpoint's logged model
        self._kept_checkpoints: dict[str, tuple[int, Path, dict[str, Any], str, float]] = {}  # run id -> to log
        # Trial runs whose end is queued: a value after it (retention's tag on a dropped checkpoint)
        # reopens the run's journal file, which must close again once that value is stored.
        self._ended: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its callbacks, and so this tracker, with its experiment state into the
        # sweep's folder: queued writes and the journal belong to this process, and the client
        # (which holds the URI) and any password stay out of the file.
        return {
            **self.__dict__,
            "tracking_uri": redact_text(self.tracking_uri),
            "client": None,
            "journal": None,
        }

    # ------------------------------------------------------------ sweep (parent run)

    def start_sweep(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str], config_yaml: str) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags={**_shown(tags), "sweeps.kind": "sweep"})
        self.parent_run_id = run.info.run_id
        self.log_params(self.parent_run_id, params)
        self.client.log_text(self.parent_run_id, redact_text(config_yaml), "config/resolved.yaml")
        return self.parent_run_id

    def reopen_sweep(self, run_id: str) -> None:
        """Continue a sweep's parent run (resume after the driver died): it is RUNNING again."""
        self.parent_run_id = run_id
        self.client.update_run(run_id, status="RUNNING")

    def save_runs_view(
        self,
        key: str,
        name: str,
        params: Sequence[str],
        metrics: Sequence[str],
        tags: Sequence[str] = (),
        search_filter: str = "",
        order_by: str | None = None,
        ascending: bool = False,
    ) -> None:
        """A view of the experiment's runs table (the UI's Views menu; opened by links that name
        `key`): these metrics, tags and params as columns (the UI shows Dataset, Duration and Source
        otherwise), the runs `search_filter` matches, sorted by the metric `order_by`.

        MLflow 3.17's UI takes filter and order from the URL too (searchFilter, orderByKey,
        orderByAsc), but never the columns, and it ignores a shared view when the URL has either:
        so links carry only the view's key, and the view holds all of it."""
        columns = [
            *(f"metrics.`{m}`" for m in metrics),
            *(f"tags.`{t}`" for t in tags),
            *(f"params.`{p}`" for p in params),
            "attributes.`Models`",
        ]
        # Tags first, then metrics and params, then the UI's own attributes: what is in view without
        # scrolling is what compares trials (the grid groups columns by kind, in another order).
        ordered = [
            "attributes.`Run Name`",
            *(c for c in columns if c.startswith("tags.")),
            *(c for c in columns if c.startswith(("metrics.", "params."))),
            "runDateAndNestInfo",
            "duration",
            "attributes.`Models`",
        ]
        widths = {c: 120 for c in columns if c.startswith(("tags.", "metrics."))}
        state: dict[str, Any] = {
            "selectedColumns": columns,
            "columnOrder": ordered,
            "columnWidths": widths,
            "searchFilter": search_filter,
        }
        if order_by:
            state.update(orderByKey=f"metrics.`{order_by}`", orderByAsc=ascending)
        now = _now_ms()
        envelope = {"name": name, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
        self.client.set_experiment_tag(self.experiment_id, VIEW_TAG + key, json.dumps(envelope))

    def describe(self, run_id: str, markdown: str) -> None:
        """The run's description on its page in the UI (Markdown)."""
        self.set_tags(run_id, {NOTE_TAG: markdown})

    def end_sweep(
        self, metrics: Mapping[str, float], tags: Mapping[str, str], status: RunStatus, error: str | None = None
    ) -> None:
        """End the parent run; `error`, the traceback of what stopped the sweep, becomes its artifact."""
        assert self.parent_run_id is not None
        if self._kept_checkpoints and self.models is not None:  # stopped before the summary logged them
            self.log_kept_models()
        self.log_metrics(self.parent_run_id, metrics)
        self.set_tags(self.parent_run_id, tags)
        self.flush()
        if error is not None:
            self.client.log_text(self.parent_run_id, error, "error/traceback.txt")
        self.client.set_terminated(self.parent_run_id, status=status.value)
        if self.journal is not None:
            self.journal.close(self.parent_run_id)
        self.close()

    def close(self) -> None:
        """Write what is queued and stop the writer thread; the tracker owns it, and a later write
        starts a new one. Safe to call twice."""
        self.writes.close()

    def __enter__(self) -> SweepTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ trials (nested runs)

    def start_trial(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        assert self.parent_run_id is not None, "start_sweep first"
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={**_shown(tags), MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_RUN_NAME: name, "sweeps.kind": "trial"},
        )
        self.log_params(run.info.run_id, params)
        self._link_dataset(run.info.run_id)
        return run.info.run_id

    def _link_dataset(self, run_id: str) -> None:
        # Behind the driver as the values are (a third of a trial's start in the driver's CPU). A
        # driver killed first leaves the run without it; `reopen_trial` links it on resume.
        if self._dataset_input is not None:
            self.writes.submit(run_id, self.client.log_inputs, run_id, datasets=[self._dataset_input])

    def end_trial(
        self, run_id: str, status: RunStatus, tags: Mapping[str, str], error: BaseException | str | None = None
    ) -> None:
        """Queued behind the run's values, like them: the driver does not wait for the store. A
        driver killed before it lands leaves the run RUNNING; `resume` ends it from Optuna's record
        (`sweeps.driver.recovery.reconcile`)."""
        self.set_tags(run_id, tags)
        self._ended.add(run_id)
        text = None if error is None else error if isinstance(error, str) else "".join(traceback.format_exception(error))
        self.writes.reap()
        self.writes.submit(run_id, self._end_run, run_id, status, text)

    def _end_run(self, run_id: str, status: RunStatus, error_text: str | None) -> None:
        """On the writer thread, after every value queued for the run before it."""
        if error_text is not None:
            self.client.log_text(run_id, redact_text(error_text), "error/traceback.txt")
        self.client.set_terminated(run_id, status=status.value)
        if self.journal is not None:
            self.journal.close(run_id)

    def reopen_trial(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Continue an interrupted trial's run: RUNNING again, with every param it should have
        (the driver may have died before they were written)."""
        self._ended.discard(run_id)
        run = self.client.get_run(run_id)
        self.log_params(run_id, {k: v for k, v in params.items() if str(k) not in run.data.params})
        if not run.inputs.dataset_inputs:
            self._link_dataset(run_id)
        self.client.update_run(run_id, status="RUNNING")

    def replay_journal(self) -> int:
        """Write what a killed driver had queued but not yet stored (see `Journal`); returns how
        many values were missing from the store. Safe to repeat: what the store has is skipped."""
        if self.journal is None:
            return 0
        written = 0
        for run_id, records in self.journal.open_runs().items():
            try:
                run = self.client.get_run(run_id)
            except Exception:  # a run the store never created (killed before its first write)
                continue
            journaled = {k: v for r in records for k, v in r.get("params", [])}
            params = [Param(k, v) for k, v in journaled.items() if k not in run.data.params]
            tags = [RunTag(k, v) for r in records for k, v in r.get("tags", [])]
            metrics, seen = [], {}
            for r in records:
                for key, value, timestamp, step in r.get("metrics", []):
                    if key not in seen:
                        seen[key] = {(m.step, m.timestamp, m.value) for m in self.client.get_metric_history(run_id, key)}
                    if (step, timestamp, value) not in seen[key]:
                        metrics.append(Metric(key, value, timestamp, step))
                        seen[key].add((step, timestamp, value))
            for i in range(0, max(len(params), len(metrics), len(tags)), _BATCH):
                self.client.log_batch(
                    run_id,
                    metrics=metrics[i : i + _BATCH],
                    params=params[i : i + _BATCH],
                    tags=tags[i : i + _BATCH],
                    synchronous=True,
                )
            written += len(params) + len(metrics)
        return written

    # ------------------------------------------------------------ values

    # Values are written by one background thread, in order, so the driver, and with it every
    # trial waiting for its next epoch, never waits for the store. A run is flushed before it
    # ends; a write that failed raises there. (MLflow's own async queue was tried: its flush
    # waited about 1 s per run, which held up Tune's loop at every trial's end.)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(str(k), _param_text(v)) for k, v in redact(dict(params)).items()]
        for i in range(0, len(items), _BATCH):
            self._write(run_id, params=items[i : i + _BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = _now_ms()
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and np.isfinite(v)]
        if batch:
            self._write(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self._write(run_id, tags=[RunTag(k, v) for k, v in _shown(tags).items()])

    def flush(self, run_id: str | None = None) -> None:
        """Wait until the values queued for `run_id` (default: every run) are in the store."""
        if run_id is None:
            self.writes.flush()
        else:
            self.writes.settle(run_id)

    def _write(self, run_id: str, **values: Any) -> None:
        if self.journal is not None:
            self.journal.append(run_id, values)
        self.writes.submit(run_id, self.client.log_batch, run_id, synchronous=True, **values)
        if self.journal is not None and run_id in self._ended:
            # Journaled until stored, as every value is; then the file goes, as at the run's end.
            self.writes.submit(run_id, self.journal.close, run_id)

    def delete_tags(self, run_id: str, keys: Sequence[str]) -> None:
        """Remove the tags `keys` where the run has them (after its queued writes, which may set them)."""
        held = self.run_tags(run_id)
        for key in keys:
            if key in held:
                self.client.delete_tag(run_id, key)

    def run_tags(self, run_id: str) -> dict[str, str]:
        self.flush(run_id)
        return dict(self.client.get_run(run_id).data.tags)

    def log_dict(self, run_id: str, value: Mapping[str, Any], path: str) -> None:
        self.client.log_dict(run_id, redact(dict(value)), path)

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(local_path), artifact_path)

    def set_model_tags(self, model_uri: str, tags: Mapping[str, str]) -> None:
        """Tags on a logged model (`models:/m-<id>`), e.g. the class names `predict` prints."""
        if model_uri.startswith("models:/m-"):
            self.client.set_logged_model_tags(model_uri[len("models:/") :].split("/", 1)[0], {k: str(v) for k, v in tags.items()})

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Tags on a registered model version (its test score)."""
        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, str(value))

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

    # ------------------------------------------------------------ kept checkpoints as logged models

    def log_models(self, context: Any) -> None:
        """From now on each kept checkpoint becomes a logged model (tracking.models.ModelContext)."""
        self.models = context

    def log_checkpoint(
        self, run_id: str, number: int, checkpoint: Path, params: Mapping[str, Any], objective: str, value: float
    ) -> None:
        """A trial's checkpoint is among the sweep's kept ones: it becomes a logged model when the
        search ends (`log_kept_models`), unless retention drops it first. Nothing is written now."""
        if self.models is not None:
            self._kept_checkpoints[run_id] = (number, checkpoint, dict(params), objective, value)

    def drop_checkpoint(self, run_id: str) -> None:
        """Retention deleted the trial's checkpoint: no model of it (and the one logged, if any, goes)."""
        self._kept_checkpoints.pop(run_id, None)
        model_id = self.model_ids.pop(run_id, None)
        if model_id is not None:
            from tracking.models import delete_model

            self.writes.submit(run_id, delete_model, self.client, model_id)

    def log_kept_models(self) -> dict[str, str]:
        """Log the kept checkpoints as logged models, the worst first: the Models tab lists models
        newest first, so it shows them ranked by the objective, as search_logged_models ranks them.
        Once, when the search has ended (K models, not one per trial that was ever among the best);
        returns trial run id -> model id. A model that cannot be logged is a warning, not a failure."""
        from tracking.models import log_checkpoint_model

        self.flush()
        pending, self._kept_checkpoints = self._kept_checkpoints, {}
        order = sorted(pending.items(), key=lambda item: (item[1][4] if self.models.mode == "max" else -item[1][4], -item[1][0]))
        last = 0
        for run_id, (number, checkpoint, params, objective, _) in order:
            while _now_ms() <= last:  # a creation time of its own: the tab's order is theirs
                time.sleep(0.001)
            last = _now_ms()
            try:
                model_id = log_checkpoint_model(self.client, self.models, run_id, number, checkpoint, params, objective)
            except Exception as exc:  # the model is lost to the Models tab, not the sweep
                print(
                    f"warning: trial #{number}'s checkpoint was not logged as a model ({type(exc).__name__}: {exc})",
                    file=sys.stderr,
                )
                continue
            if model_id is not None:
                self.model_ids[run_id] = model_id
        return dict(self.model_ids)

    def checkpoint_model(self, run_id: str) -> str | None:
        """`models:/<id>` of the trial run's kept checkpoint (None: none logged)."""
        from tracking.models import find_checkpoint_model

        self.flush(run_id)
        model_id = self.model_ids.get(run_id) or find_checkpoint_model(self.client, self.experiment_id, run_id)
        return f"models:/{model_id}" if model_id else None

    def log_keras_model(
        self, run_id: str, model: Any, preprocessing: Mapping[str, Any] | None = None, name: str = "model"
    ) -> str:
        """Log a Keras model with its signature; returns the model URI (runs:/<id>/model).

        The signature comes from the model's own input and output specs, and the requirements are
        the installed versions: MLflow would otherwise run the model once and load it again in a
        subprocess (a second TensorFlow import, ~5 s) to find the same facts. `preprocessing`
        (what turned raw images into the training input) is kept in the model's own metadata, so
        whoever loads the model applies exactly the same (`tracking.load_model_and_preprocessing`).
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
            info = mlflow.keras.log_model(
                model,
                name=name,
                signature=signature,
                pip_requirements=_model_requirements(),
                metadata={PREPROCESSING_KEY: dict(preprocessing)} if preprocessing else None,
            )
        if run_id == self.parent_run_id:  # the sweep's own run (the refit model) goes on until end_sweep
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status=RunStatus.FINISHED.value)
        return info.model_uri


class Journal:
    """A write-ahead log of every value queued for a run that is still open, one JSON line each.

    Values reach the store from a background thread; a driver killed with `kill -9` loses what
    was still queued (a trial's params, its last epochs). Each value is appended here first (an
    append and a flush: no fsync, since a dead process leaves the page cache intact), and a
    resumed sweep writes what the store lacks. A run's file goes once the run has ended.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, Any] = {}
        # The driver appends; the writer thread closes a run's file once its end is stored, while
        # the driver may still be appending a late value (a tag set after the end) to it.
        self._lock = threading.Lock()

    def _path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.jsonl"

    def append(self, run_id: str, values: Mapping[str, Any]) -> None:
        record = {
            "params": [[p.key, p.value] for p in values.get("params", [])],
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in values.get("metrics", [])],
            "tags": [[t.key, t.value] for t in values.get("tags", [])],
        }
        with self._lock:
            handle = self._files.get(run_id)
            if handle is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                handle = self._files[run_id] = open(self._path(run_id), "a", encoding="utf-8")
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def close(self, run_id: str) -> None:
        with self._lock:
            handle = self._files.pop(run_id, None)
            if handle is not None:
                handle.close()
            self._path(run_id).unlink(missing_ok=True)

    def open_runs(self) -> dict[str, list[dict[str, Any]]]:
        """Each run's journaled records; a line cut short by the kill is left out."""
        runs: dict[str, list[dict[str, Any]]] = {}
        for path in sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []:
            records = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
            runs[path.stem] = records
        return runs


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
