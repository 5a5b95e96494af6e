"""The read side of a sweep's MLflow records: its parent run, its trial runs, their epoch histories.

Plain dataclasses come out, never MLflow entities, so callers need not import MLflow. Every call
names its tracking URI explicitly; nothing relies on MLflow's global state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from sweeps.core.metrics import EPOCH_METRICS

REPORT_ARTIFACT_PATH = "report"
_PAGE = 1000
_RECORD_PAGE = 100


@dataclass(frozen=True)
class RunRecord:
    """One MLflow run as plain data."""

    run_id: str
    name: str
    status: str
    experiment_id: str
    tags: Mapping[str, str]
    params: Mapping[str, str]
    start_time_ms: int | None
    end_time_ms: int | None
    # metric -> ((step, value), ...) sorted by step; filled only by `trial_histories`.
    histories: Mapping[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)


@lru_cache(maxsize=8)
def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


def store_exists(tracking_uri: str) -> bool:
    """False for a sqlite store whose file is missing: opening it would create an empty one."""
    parsed = urlparse(tracking_uri)
    if not parsed.scheme.startswith("sqlite"):
        return True
    path = unquote(tracking_uri.split(":///", 1)[1]) if ":///" in tracking_uri else ""
    return path in ("", ":memory:") or Path(path).is_file()


def _record(run: Run) -> RunRecord:
    info = run.info
    return RunRecord(
        run_id=info.run_id,
        name=run.data.tags.get(MLFLOW_RUN_NAME, info.run_name or ""),
        status=info.status,
        experiment_id=info.experiment_id,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        start_time_ms=info.start_time,
        end_time_ms=info.end_time,
    )


def search_runs(tracking_uri: str, experiment_id: str, filter_string: str, order_by: list[str] | None = None) -> list[Run]:
    return [run for page in _pages(tracking_uri, experiment_id, filter_string, order_by, _PAGE) for run in page]


def _pages(
    tracking_uri: str, experiment_id: str, filter_string: str, order_by: list[str] | None, size: int
) -> Iterator[list[Run]]:
    client, token = _client(tracking_uri), None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=size, order_by=order_by, page_token=token)
        yield page
        token = page.token
        if not token:
            return


def quote(value: str) -> str:
    """`value` as a string literal of an MLflow filter (quotes and backslashes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def get_run(tracking_uri: str, run_id: str) -> RunRecord:
    """One run by its id: a sweep's parent is found this way, never by its name, which another
    sweep on a shared server may carry too."""
    return _record(_client(tracking_uri).get_run(run_id))


def experiment_id(tracking_uri: str, experiment: str) -> str | None:
    """The id of `experiment` in the store (None: no store, or no such experiment yet)."""
    if not store_exists(tracking_uri):
        return None
    found = _client(tracking_uri).get_experiment_by_name(experiment)
    return found.experiment_id if found is not None else None


def find_sweep_run(tracking_uri: str, experiment: str, name: str) -> RunRecord | None:
    """The parent run of sweep `name` in `experiment`; the latest started if several share the name."""
    if not store_exists(tracking_uri):
        return None
    found = _client(tracking_uri).get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = search_runs(
        tracking_uri,
        found.experiment_id,
        f"tags.`sweeps.name` = {quote(name)} and tags.`sweeps.kind` = 'sweep'",
        ["attributes.start_time DESC"],
    )
    return _record(runs[0]) if runs else None


def latest_sweep(tracking_uri: str, experiment: str) -> str | None:
    """The name of the sweep in `experiment` started last (None: none yet)."""
    if not store_exists(tracking_uri):
        return None
    found = _client(tracking_uri).get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = _client(tracking_uri).search_runs(
        [found.experiment_id], "tags.`sweeps.kind` = 'sweep'", max_results=1, order_by=["attributes.start_time DESC"]
    )
    return runs[0].data.tags.get("sweeps.name") if runs else None


def list_trial_runs(tracking_uri: str, parent: RunRecord) -> list[RunRecord]:
    """The nested trial runs of a sweep's parent run, oldest first."""
    # A page at a time, each kept as its records only: MLflow's runs, with every metric, would be held
    # all at once otherwise (~35 MB per 1,000 trials).
    pages = _pages(
        tracking_uri,
        parent.experiment_id,
        f"tags.`{MLFLOW_PARENT_RUN_ID}` = {quote(parent.run_id)} and tags.`sweeps.kind` = 'trial'",
        ["attributes.start_time ASC"],
        _RECORD_PAGE,
    )
    return [_record(r) for page in pages for r in page]


def metric_histories(
    tracking_uri: str, run_id: str, metrics: Iterable[str] = EPOCH_METRICS
) -> dict[str, tuple[tuple[int, float], ...]]:
    """Per-epoch values of each metric, by step; a metric never logged maps to ()."""
    client = _client(tracking_uri)
    histories = {}
    for metric in metrics:
        points = {m.step: m.value for m in client.get_metric_history(run_id, metric)}  # a re-logged step keeps its last value
        histories[metric] = tuple(sorted(points.items()))
    return histories


def trial_histories(tracking_uri: str, parent: RunRecord, metrics: Iterable[str] = EPOCH_METRICS) -> dict[str, RunRecord]:
    """Every trial run of the sweep with its metric histories, keyed by run id."""
    metrics = tuple(metrics)
    return {
        run.run_id: replace(run, histories=metric_histories(tracking_uri, run.run_id, metrics))
        for run in list_trial_runs(tracking_uri, parent)
    }


def log_report_files(
    tracking_uri: str, run_id: str, paths: Iterable[Path], artifact_path: str = REPORT_ARTIFACT_PATH
) -> list[str]:
    """Attach files to a (possibly finished) run under `artifact_path`; returns their artifact paths."""
    client = _client(tracking_uri)
    logged = []
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)
        logged.append(f"{artifact_path}/{Path(path).name}")
    return logged


def list_report_files(tracking_uri: str, run_id: str, artifact_path: str = REPORT_ARTIFACT_PATH) -> list[str]:
    return sorted(a.path for a in _client(tracking_uri).list_artifacts(run_id, artifact_path) if not a.is_dir)
