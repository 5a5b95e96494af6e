"""The record keys: the names under which a sweep's records are kept in Optuna (a trial's user attrs) and in
MLflow (the tags every reader filters on). Their one home: the callbacks and the tell write them; recovery,
the summary, the report and the tracker read them. Pure.
"""

from __future__ import annotations

# Optuna trial user attrs
RUN_ID_ATTR = "mlflow_run_id"  # the trial's MLflow run
TUNE_TRIAL_ATTR = "tune_trial_id"  # the Tune trial that ran it
TRIAL_DIR_ATTR = "trial_dir"  # where its checkpoints go, for a resume that finds no checkpoint attr
CHECKPOINT_ATTR = "checkpoint"  # the best epoch's model file of its newest checkpoint
OUTCOME_ATTR = "outcome"  # its sweeps.core.outcomes.Outcome value
INFEASIBLE_ATTR = "infeasible_reason"  # why its model cannot be built (the report key of the same name)
PBT_FINAL_ATTR = "pbt_final_params"  # scheduler=pbt: the params a member ended with, where PBT changed them

# MLflow tags
STATE_TAG = "sweeps.state"  # a run's outcome, as sweeps writes it (parent: the sweep's, nested: the trial's)
