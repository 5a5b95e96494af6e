"""The per-epoch metrics every trial reports: one home for the names the trial, the runner, the
tracker, the config check and the report all use. Pure: imports nothing."""

from __future__ import annotations

# In the order a reader wants them (the report's columns): validation first, accuracy before loss.
EPOCH_METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")
