"""Where trials write checkpoints: the scheduler's stop points, holding the best epoch's weights."""

import numpy as np
import pytest

from sweeps.trial import TrialSettings, _BestWeights


@pytest.mark.parametrize("scheduler, grace, factor, max_epochs, expected", [
    ("asha", 2, 3, 6, {2, 6}),
    ("asha", 2, 3, 12, {2, 6, 12}),
    ("asha", 1, 4, 100, {1, 4, 16, 64, 100}),
    ("asha", 1, 3, 3, {1, 3}),
    ("asha", 3, 2, 3, {3}),
    ("none", 1, 3, 8, {8}),
])
def test_stop_epochs_are_the_rungs_and_the_last_epoch(scheduler, grace, factor, max_epochs, expected):
    from sweeps.config import load_config
    from sweeps.runner import make_scheduler, stop_epochs

    cfg = load_config([f"scheduler={scheduler}", f"max_epochs={max_epochs}"]
                      + ([f"scheduler.grace_period={grace}", f"scheduler.reduction_factor={factor}"] if scheduler == "asha" else []))
    assert stop_epochs(make_scheduler(cfg), max_epochs) == expected


def _settings(stop_epochs=frozenset({2, 6}), every_s=60.0):
    return TrialSettings(model={}, input_shape=(8, 8, 1), num_classes=10, objectives=(("val_accuracy", "max"),),
                         max_epochs=6, seed=0, cpus=1, stop_epochs=frozenset(stop_epochs), checkpoint_every_s=every_s)


class _Weights:
    """Stands in for a Keras model's weight accessors only (the save path is tested below on Keras)."""

    def get_weights(self):
        return [np.zeros(1)]


@pytest.mark.parametrize("stop_epochs, every_s, improved_at, expected_due", [
    ({2, 6}, 60.0, [1], {1: False, 2: True, 3: False}),        # written at the rung, not before
    ({2, 6}, 60.0, [], {1: False, 2: False, 6: False}),        # nothing better: nothing to write
    ({2, 6}, 0.0, [1], {1: True}),                             # every better epoch, for retries
    (set(), 60.0, [3], {3: True}),                             # rungs unknown: every better epoch
])
def test_a_checkpoint_is_due_at_stop_points_after_an_improvement(stop_epochs, every_s, improved_at, expected_due):
    kept = _BestWeights(_settings(stop_epochs, every_s))
    for epoch in sorted(expected_due):
        if epoch in improved_at:
            kept.remember(_Weights())
        assert kept.due(epoch) is expected_due[epoch], epoch


def test_the_checkpoint_holds_the_best_epochs_weights_and_training_goes_on_from_the_current_ones(tmp_path):
    import keras

    from models.conv2d import load_model

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    kept = _BestWeights(_settings())
    best = [w.copy() for w in model.get_weights()]
    kept.remember(model)
    model.set_weights([w + 1.0 for w in best])  # a later, worse epoch
    current = [w.copy() for w in model.get_weights()]
    kept.save(model, tmp_path / "model.keras")

    saved = load_model(tmp_path / "model.keras")
    for a, b in zip(saved.get_weights(), best):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), current):
        np.testing.assert_array_equal(a, b)
    assert not kept.due(6), "written once: nothing due until the next improvement"


@pytest.mark.slow
@pytest.mark.ray
def test_every_kept_checkpoint_scores_its_trials_best_epoch(tmp_path):
    """No scheduler: trials checkpoint only after their last epoch, yet what they keep is the best
    epoch's model, also when later epochs were worse (validation loss rising: overfitting)."""
    import optuna
    from mlflow import MlflowClient

    from models.conv2d import load_model
    from sweeps.datasets import load_dataset
    from tests.conftest import run_cli

    out = tmp_path / "outputs"
    result = run_cli("run", "name=ckpt", "n_trials=4", "max_epochs=6", "scheduler=none", "sampler=random", "seed=1",
                     "metric=val_loss", "mode=min", "dataset.limit=300", "resources.num_cpus=2",
                     "tracking.log_best_model=false", "tracking.log_report=false",
                     "space.learning_rate=choice(0.01,0.03)", "space.kernel_size=3", "space.padding=same", "space.filters=choice(16,32)",
                     "space.dilation_rate=1", "space.kernel_regularizer_strength=0.0001", f"output_dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    study = optuna.load_study(study_name="ckpt", storage=f"sqlite:///{out / 'optuna.db'}")
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    data = load_dataset("digits", None, 0.2, 300, 1)
    worse_later = 0
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        history = [m.value for m in sorted(client.get_metric_history(trial.user_attrs["mlflow_run_id"], "val_loss"), key=lambda m: m.step)]
        assert len(history) == 6 and trial.value == pytest.approx(min(history))
        loss, _ = load_model(trial.user_attrs["checkpoint"]).evaluate(data.x_val, data.y_val, verbose=0)
        assert loss == pytest.approx(trial.value, rel=1e-4)
        worse_later += history[-1] > min(history)
    assert worse_later >= 1, "no trial got worse after its best epoch: this sweep no longer tests the weight swap"
