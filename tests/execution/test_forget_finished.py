"""What the driver keeps of a finished trial (issue 22: the driver's memory at scale).

Tune keeps every trial of a sweep in the driver, finished or not, and writes each into its
experiment snapshot; per trial it kept running statistics of every numeric key reported (about
55 KB) and, per checkpoint, the whole result it came with. The product reads neither."""

import json

import pytest
from ray.tune.experiment import Trial


def _reported(trial: Trial, epochs: int) -> None:
    for epoch in range(1, epochs + 1):
        trial.update_last_result({"val_accuracy": 0.5 + epoch / 10, "val_loss": 1.0 / epoch, "training_iteration": epoch})


@pytest.mark.parametrize("ended", ["on_trial_complete", "on_trial_error"])
def test_a_finished_trial_keeps_its_last_result_but_no_running_statistics(ended):
    from sweeps.execution.callbacks import ForgetFinished

    trial = Trial("simulated", stub=True, trial_id="t1")
    _reported(trial, 3)
    assert trial.run_metadata.metric_analysis  # Tune's own, before the callback
    before = len(trial.get_json_state()[1])
    getattr(ForgetFinished(), ended)(0, [trial], trial)
    assert trial.run_metadata.metric_analysis == {} and trial.run_metadata.metric_n_steps == {}
    assert trial.last_result["val_accuracy"] == pytest.approx(0.8)  # Tune's ResultGrid and the callbacks read it
    assert len(trial.get_json_state()[1]) < before / 2  # the snapshot's copy is rebuilt without them


@pytest.mark.slow
@pytest.mark.ray
def test_tunes_record_of_a_sweeps_finished_trials_is_slim(tmp_path):
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    from tests.conftest import run_cli

    out = tmp_path / "out"
    result = run_cli(
        "run",
        "name=slim",
        "n_trials=3",
        "max_epochs=2",
        "dataset.limit=200",
        "scheduler=none",
        "sampler=random",
        "resources.num_cpus=2",
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # Tune's last experiment snapshot, written after the last trial ended: what its driver held.
    (state,) = out.glob("ray/slim/experiment_state-*.json")
    trials = json.loads(state.read_text())["trial_data"]
    assert len(trials) == 3
    for _, runtime in trials:
        metadata = _TrainingRunMetadata.from_json_state(runtime)
        assert metadata.last_result["training_iteration"] == 2
        assert metadata.metric_analysis == {} and metadata.metric_n_steps == {}
        checkpoints = metadata.checkpoint_manager.best_checkpoint_results
        assert checkpoints, "each trial checkpointed"
        assert all(c.metrics == {} for c in checkpoints), [sorted(c.metrics) for c in checkpoints]
