"""The only door to MLflow: one parent run per sweep, one nested run per trial, explicit run ids."""

from tracking.query import (
    EPOCH_METRICS,
    REPORT_ARTIFACT_PATH,
    RunRecord,
    experiment_id,
    find_sweep_run,
    list_report_files,
    list_trial_runs,
    log_report_files,
    metric_histories,
    store_exists,
    trial_histories,
)
from tracking.registry import (
    DEFAULT_ALIAS,
    ModelSource,
    RegistryError,
    dataset_inputs,
    load_keras_model,
    register_best_model,
    resolve_model_uri,
)
from tracking.tracker import REDACTED, RunStatus, SweepTracker, default_tracking_uri, import_store_modules, redact, unreachable

__all__ = [
    "DEFAULT_ALIAS",
    "EPOCH_METRICS",
    "ModelSource",
    "REDACTED",
    "REPORT_ARTIFACT_PATH",
    "RegistryError",
    "RunRecord",
    "RunStatus",
    "SweepTracker",
    "dataset_inputs",
    "experiment_id",
    "default_tracking_uri",
    "import_store_modules",
    "find_sweep_run",
    "list_report_files",
    "list_trial_runs",
    "load_keras_model",
    "log_report_files",
    "metric_histories",
    "redact",
    "register_best_model",
    "resolve_model_uri",
    "store_exists",
    "trial_histories",
    "unreachable",
]
