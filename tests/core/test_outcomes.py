"""Outcome rules (one table for Optuna and MLflow) and the runner's small pure helpers."""

import pytest

from sweeps.core.outcomes import RUN_STATUS, Outcome, trial_outcome
from sweeps.core.protocol import FINISHED, INFEASIBLE


@pytest.mark.parametrize(
    ("last_result", "error", "expected"),
    [
        ({FINISHED: True, "val_accuracy": 0.9}, False, Outcome.COMPLETE),
        ({FINISHED: False, "val_accuracy": 0.5}, False, Outcome.PRUNED),  # ASHA or the time budget stopped it
        ({FINISHED: True, INFEASIBLE: "block 1: ..."}, False, Outcome.INFEASIBLE),
        ({FINISHED: True, "val_accuracy": 0.9}, True, Outcome.FAILED),  # an error wins over a good last epoch
        (None, False, Outcome.PRUNED),  # stopped before its first report
        ({}, True, Outcome.FAILED),
    ],
)
def test_trial_outcome(last_result, error, expected):
    assert trial_outcome(last_result, error) is expected


def test_every_outcome_has_an_mlflow_status():
    assert set(RUN_STATUS) == set(Outcome)
    assert RUN_STATUS[Outcome.COMPLETE] == "FINISHED" and RUN_STATUS[Outcome.FAILED] == "FAILED"


def test_a_temp_folder_is_not_shared_storage(tmp_path):
    from sweeps.execution.runtime import NETWORK_FILESYSTEMS, _filesystem_type

    kind = _filesystem_type(tmp_path)
    assert kind != "unknown" and kind not in NETWORK_FILESYSTEMS
