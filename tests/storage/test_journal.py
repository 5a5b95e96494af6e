"""The tracker's journal: what a killed driver had queued for MLflow reaches the store on resume."""

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from tracking.tracker import Journal, RunStatus, SweepTracker

pytestmark = pytest.mark.reliability


def test_values_queued_but_never_written_are_written_by_the_next_driver_once(tmp_path):
    uri, journal = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "journal"
    first = SweepTracker(uri, "sweeps", tmp_path / "artifacts", journal_dir=journal)
    first.start_sweep("s", {"n_trials": 2}, {}, "n_trials: 2\n")
    run_id = first.start_trial("trial-000", {"filters": 16}, {"optuna.trial_number": "0"})
    first.log_metrics(run_id, {"val_accuracy": 0.5}, step=1)
    first.flush()
    # What the background writer had not yet written when the driver was killed: journaled only.
    lost = Journal(journal)
    lost.append(
        run_id,
        {
            "params": [Param("learning_rate", "0.01")],
            "metrics": [Metric("val_accuracy", 0.7, 1000, 2)],
            "tags": [RunTag("sweeps.node", "n1")],
        },
    )
    client = MlflowClient(uri)
    assert "learning_rate" not in client.get_run(run_id).data.params

    second = SweepTracker(uri, "sweeps", tmp_path / "artifacts", journal_dir=journal)
    second.reopen_sweep(first.parent_run_id)
    assert second.replay_journal() == 2
    assert second.replay_journal() == 0  # what the store has is skipped: no duplicate points
    run = client.get_run(run_id)
    assert run.data.params == {"filters": "16", "learning_rate": "0.01"} and run.data.tags["sweeps.node"] == "n1"
    assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, "val_accuracy")) == [(1, 0.5), (2, 0.7)]

    second.end_trial(run_id, RunStatus.FINISHED, {"sweeps.state": "COMPLETE"})
    second.flush()  # the end is queued behind the run's values, like them
    assert not (journal / f"{run_id}.jsonl").exists(), "an ended run's journal goes"


def test_a_line_cut_short_by_the_kill_is_skipped(tmp_path):
    journal = Journal(tmp_path)
    journal.append("r1", {"params": [Param("a", "1")]})
    with open(tmp_path / "r1.jsonl", "a") as handle:
        handle.write('{"params": [["b", ')  # the kill came mid-line
    assert journal.open_runs() == {"r1": [{"params": [["a", "1"]], "metrics": [], "tags": []}]}
