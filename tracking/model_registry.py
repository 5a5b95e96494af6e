"""The MLflow Model Registry side of a sweep: register its best model, load a model back, and list
the datasets an experiment's runs were trained on.

Every call names its tracking (and registry) URI explicitly. This matters more here than anywhere:
MLflow 3's own resolution of `models:/...` URIs (the sqlite registry's `create_model_version`,
`ModelsArtifactRepository`) looks logged models and registered versions up through a *global*
`MlflowClient()`, i.e. whatever `mlflow.set_tracking_uri` last said. So `models:/` URIs are resolved
here, with an explicit client, to the artifact location they name, and only that location is handed
to MLflow.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from sweeps.core.errors import SweepsError
from tracking.query import quote, search_runs, store_exists

DEFAULT_ALIAS = "champion"


class RegistryError(SweepsError, LookupError):
    """A model URI or registered model that cannot be found or used; the message says which and why."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model URI's files are, and what it came from."""

    location: str  # an artifact URI or path MLflow downloads without a registry lookup (file://..., s3://...)
    run_id: str | None
    model_id: str | None


def _clients(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _first_line(exc: Exception) -> str:
    text = (exc.message if isinstance(exc, MlflowException) else str(exc)).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def _join(base: str, sub: str) -> str:
    return f"{base.rstrip('/')}/{sub.strip('/')}" if sub else base


def resolve_model_uri(tracking_uri: str, uri: str) -> ModelSource:
    """`models:/m-<id>` (a logged model), `models:/NAME@alias[/sub/path]`, `models:/NAME/<version|latest>`,
    `runs:/<run_id>/<name>`, or any artifact URI or local path (returned as is), resolved with an
    explicit client to the artifact location of the model's files."""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
    from mlflow.store.artifact.utils.models import _parse_model_uri

    client = _clients(tracking_uri)
    try:
        if uri.startswith("models:/"):
            base, sub = ModelsArtifactRepository.split_models_uri(uri)
            parsed = _parse_model_uri(base)
            if parsed.model_id is not None:
                logged = client.get_logged_model(parsed.model_id)
                return ModelSource(_join(logged.artifact_location, sub), logged.source_run_id, logged.model_id)
            if parsed.alias is not None:
                version = client.get_model_version_by_alias(parsed.name, parsed.alias)
            elif parsed.version is not None:
                version = client.get_model_version(parsed.name, parsed.version)
            else:  # models:/NAME/latest (or a legacy stage)
                found = [
                    v
                    for v in client.search_model_versions(f"name = {quote(parsed.name)}")
                    if parsed.stage is None or (v.current_stage or "").lower() == parsed.stage.lower()
                ]
                if not found:
                    raise RegistryError(
                        f"registered model {parsed.name!r} has no versions"
                        + (f" in stage {parsed.stage!r}" if parsed.stage else "")
                    )
                version = max(found, key=lambda v: int(v.version))
            location = client.get_model_version_download_uri(version.name, version.version)
            return ModelSource(_join(location, sub), version.run_id, getattr(version, "model_id", None))
        if uri.startswith("runs:/"):
            run_id, _, path = uri[len("runs:/") :].partition("/")
            run = client.get_run(run_id)
            path = path.strip("/")
            # MLflow 3 logs a model outside its run's artifacts, as a logged model named `path`.
            models = client.search_logged_models(
                [run.info.experiment_id],
                filter_string=f"source_run_id = {quote(run_id)} AND name = {quote(path)}",
            )
            if models:
                latest = max(models, key=lambda m: m.creation_timestamp)
                return ModelSource(latest.artifact_location, run_id, latest.model_id)
            # A model saved among the run's own artifacts (MLflow 2 style). Listed through the artifact
            # store itself: MlflowClient.list_artifacts would fall back to the global tracking URI.
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            listed = get_artifact_repository(run.info.artifact_uri).list_artifacts(path or None)
            if not any(a.path.rsplit("/", 1)[-1] == "MLmodel" for a in listed):
                raise RegistryError(f"run {run_id} has no model at {path!r}")
            return ModelSource(_join(run.info.artifact_uri, path), run_id, None)
    except MlflowException as exc:
        raise RegistryError(f"{uri} cannot be resolved in {tracking_uri} ({_first_line(exc)})") from None
    return ModelSource(uri, None, None)


def register_best_model(
    tracking_uri: str,
    model_uri: str,
    name: str,
    alias: str = DEFAULT_ALIAS,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register `model_uri` (e.g. a sweep's `sweeps.best_model_uri`, `models:/m-<id>`) as a new
    version of registered model `name` (created if missing), point `alias` at it; returns the version."""
    client = _clients(tracking_uri)
    source = resolve_model_uri(tracking_uri, model_uri)
    try:
        try:
            client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                client.create_registered_model(name, description="Best models of hyperparameter sweeps (python -m sweeps).")
            except MlflowException as again:  # created meanwhile by another process: fine
                if again.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                    raise
        # The resolved artifact location as source (never models:/m-<id>: the sqlite registry would look
        # that up through the global tracking URI), with run_id and model_id for the lineage links.
        version = client.create_model_version(
            name,
            source.location,
            run_id=source.run_id,
            tags={k: str(v) for k, v in (tags or {}).items()},
            model_id=source.model_id,
        )
        client.set_registered_model_alias(name, alias, version.version)
        if source.model_id:
            _link_logged_model(client, source.model_id, name, str(version.version))
    except MlflowException as exc:
        raise RegistryError(f"registering {model_uri} as {name!r} in {tracking_uri} failed ({_first_line(exc)})") from None
    return str(version.version)


def _link_logged_model(client: MlflowClient, model_id: str, name: str, version: str) -> None:
    """What mlflow.register_model does too: the logged model's page then names its registered versions."""
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    model = client.get_logged_model(model_id)
    versions = json.loads(model.tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
    if {"name": name, "version": version} not in versions:
        client.set_logged_model_tags(
            model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([*versions, {"name": name, "version": version}])}
        )


def class_names(tracking_uri: str, uri: str) -> list[str] | None:
    """The class names recorded with the model behind `uri` (tag `sweeps.class_names` of its logged
    model), or None: a model trained on arrays, whose labels are their own names."""
    try:
        source = resolve_model_uri(tracking_uri, uri)
        # A registered version may not carry its logged model's id; its files' location names it.
        found = re.search(r"/models/(m-[0-9a-f]+)(/|$)", source.location)
        model_id = source.model_id or (found[1] if found else None)
        if model_id is None:
            return None
        text = _clients(tracking_uri).get_logged_model(model_id).tags.get("sweeps.class_names")
    except (MlflowException, RegistryError):
        return None
    names = json.loads(text) if text else None
    return [str(n) for n in names] if isinstance(names, list) else None


@contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No per-file progress bar on stderr while a model downloads (a CLI's output stays its own)."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as FLAG

    before = os.environ.get(FLAG.name)
    os.environ[FLAG.name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(FLAG.name, None)
        else:
            os.environ[FLAG.name] = before


def load_keras_model(tracking_uri: str, uri: str) -> Any:
    """The Keras model behind `uri` (`models:/NAME@champion`, `models:/m-<id>`, `runs:/...`, a path),
    looked up in `tracking_uri` and never through MLflow's global tracking URI."""
    return load_model_and_preprocessing(tracking_uri, uri)[0]


def load_model_and_preprocessing(tracking_uri: str, uri: str) -> tuple[Any, dict[str, Any] | None]:
    """`load_keras_model`, and the preprocessing recorded with the model at training time (None
    for a model logged without one)."""
    import mlflow.artifacts
    import mlflow.keras

    source = resolve_model_uri(tracking_uri, uri)
    with tempfile.TemporaryDirectory(prefix="sweeps-model-") as tmp, _quiet_downloads():
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source.location,
                dst_path=tmp,
                tracking_uri=tracking_uri,
                registry_uri=tracking_uri,
            )
        except (MlflowException, OSError) as exc:
            raise RegistryError(f"the files of {uri} ({source.location}) cannot be read ({_first_line(exc)})") from None
        from mlflow.models import Model

        from tracking.tracker import PREPROCESSING_KEY

        recorded = (Model.load(local).metadata or {}).get(PREPROCESSING_KEY)
        # Keras reads the whole .keras file into memory: the temporary copy can go afterwards.
        return mlflow.keras.load_model(local), (dict(recorded) if isinstance(recorded, dict) else None)


# ---------------------------------------------------------------- datasets


def _shape_from_schema(schema: str | None) -> tuple[int, ...] | None:
    """(8, 8, 1) from a NumpyDataset schema: {"mlflow_tensorspec": {"features": "[{... shape: [-1, 8, 8, 1]}]"}}."""
    try:
        spec = json.loads(schema or "")["mlflow_tensorspec"]["features"]
        shape = json.loads(spec)[0]["tensor-spec"]["shape"]
        return tuple(int(d) for d in shape[1:])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def dataset_inputs(tracking_uri: str, experiment: str) -> list[dict[str, Any]]:
    """Every dataset version the runs of `experiment` used, one dict per (name, digest):

    name, digest, source (its URI or loader), source_type, shape ("8x8x1"), rows (in the profile),
    num_classes (from the sweeps' tags, "" if unknown), context ("training"), sweeps (names of the
    sweeps whose parent or trial runs used it, sorted), runs (how many runs used it).
    Most recently used first. [] when the store or the experiment does not exist.
    """
    if not store_exists(tracking_uri):
        return []
    client = _clients(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = search_runs(tracking_uri, found.experiment_id, "", ["attributes.start_time DESC"])
    sweep_of = {
        r.info.run_id: r.data.tags["sweeps.name"]
        for r in runs
        if r.data.tags.get("sweeps.kind") == "sweep" and "sweeps.name" in r.data.tags
    }
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        tags = run.data.tags
        sweep = sweep_of.get(run.info.run_id) or sweep_of.get(tags.get(MLFLOW_PARENT_RUN_ID, ""))
        for entry in run.inputs.dataset_inputs if run.inputs else []:
            ds = entry.dataset
            key = (ds.name, ds.digest)
            row = seen.get(key)
            if row is None:
                source = _json(ds.source)
                profile = _json(ds.profile)
                shape = _shape_from_schema(ds.schema) or tuple(profile.get("features_shape", [])[1:]) or None
                row = seen[key] = {
                    "name": ds.name,
                    "digest": ds.digest,
                    "source": str(source.get("uri") or source.get("url") or source.get("path") or ds.source or ""),
                    "source_type": ds.source_type or "",
                    "shape": "x".join(map(str, shape)) if shape else "",
                    "rows": int(profile["features_shape"][0]) if profile.get("features_shape") else None,
                    "num_classes": "",
                    "context": ",".join(t.value for t in entry.tags if t.key == "mlflow.data.context"),
                    "sweeps": set(),
                    "runs": 0,
                }
            row["runs"] += 1
            if sweep:
                row["sweeps"].add(sweep)
            # The sweep's own tags describe the dataset it logged (digest-matched, so never another version).
            if tags.get("dataset.digest") == ds.digest:
                row["shape"] = row["shape"] or tags.get("dataset.input_shape", "")
                row["num_classes"] = row["num_classes"] or tags.get("dataset.num_classes", "")
                if row["rows"] is None and tags.get("dataset.train_size", "").isdigit():
                    row["rows"] = int(tags["dataset.train_size"])
    return [{**row, "sweeps": sorted(row["sweeps"])} for row in seen.values()]


def sweep_manifest(tracking_uri: str, experiment: str, ref: str) -> dict | None:
    """The dataset manifest (`dataset/manifest.json`) logged by the sweep named `ref`, or by the
    latest sweep whose dataset digest starts with `ref`; None if no such sweep or artifact."""
    if not store_exists(tracking_uri):
        return None
    client = _clients(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = search_runs(tracking_uri, found.experiment_id, f"tags.`sweeps.kind` = 'sweep' AND tags.`sweeps.name` = {quote(ref)}")
    if not runs and ref.isalnum():
        runs = search_runs(
            tracking_uri,
            found.experiment_id,
            f"tags.`sweeps.kind` = 'sweep' AND tags.`dataset.digest` LIKE {quote(ref + '%')}",
            ["attributes.start_time DESC"],
        )
    for run in runs:
        try:
            with tempfile.TemporaryDirectory(prefix="sweeps-manifest-") as tmp, _quiet_downloads():
                local = client.download_artifacts(run.info.run_id, "dataset/manifest.json", tmp)
                with open(local, encoding="utf-8") as handle:
                    return json.load(handle)
        except Exception:  # no such artifact (an array dataset), or a store that cannot serve it
            continue
    return None
