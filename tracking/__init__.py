"""The only door to MLflow: one parent run per sweep, one nested run per trial, explicit run ids."""

from tracking.tracker import RunStatus, SweepTracker, default_tracking_uri

__all__ = ["RunStatus", "SweepTracker", "default_tracking_uri"]
