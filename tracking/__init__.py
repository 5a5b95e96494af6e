"""The only door to MLflow: one parent run per sweep, one nested run per trial, explicit run ids."""

from tracking.query import (
    EPOCH_METRICS,
    REPORT_ARTIFACT_PATH,
    RunRecord,
    find_sweep_run,
    list_report_files,
    list_trial_runs,
    log_report_files,
    metric_histories,
    store_exists,
    trial_histories,
)
from tracking.tracker import REDACTED, RunStatus, SweepTracker, default_tracking_uri, redact, unreachable

__all__ = [
    "EPOCH_METRICS",
    "REDACTED",
    "REPORT_ARTIFACT_PATH",
    "RunRecord",
    "RunStatus",
    "SweepTracker",
    "default_tracking_uri",
    "find_sweep_run",
    "list_report_files",
    "list_trial_runs",
    "log_report_files",
    "metric_histories",
    "redact",
    "store_exists",
    "trial_histories",
    "unreachable",
]
