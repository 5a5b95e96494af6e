"""Where trials write checkpoints: the scheduler's stop points, holding the best epoch's weights."""

import numpy as np
import pytest

from sweeps.core.protocol import TrialSettings
from sweeps.worker.trainable import _BestWeights


@pytest.mark.parametrize(
    "scheduler, grace, factor, max_epochs, expected",
    [
        ("asha", 2, 3, 6, {2, 6}),
        ("asha", 2, 3, 12, {2, 6, 12}),
        ("asha", 1, 4, 100, {1, 4, 16, 64, 100}),
        ("asha", 1, 3, 3, {1, 3}),
        ("asha", 3, 2, 3, {3}),
        ("none", 1, 3, 8, {8}),
        # HyperBand (FIFO-derived in Ray, yet it stops trials): brackets r0 = int(max_t * rf^-s), x rf
        ("hyperband", 1, 3, 9, {1, 3, 9}),
        ("hyperband", 1, 3, 12, {1, 3, 4, 9, 12}),
        ("hyperband", 1, 2, 8, {1, 2, 4, 8}),
        # The median rule (FIFO-derived too) may stop a trial at any epoch from grace_period on
        ("median", 2, 3, 6, {2, 3, 4, 5, 6}),
        ("median", 1, 3, 3, {1, 2, 3}),
    ],
)
def test_stop_epochs_are_where_each_scheduler_may_stop_and_the_last_epoch(scheduler, grace, factor, max_epochs, expected):
    from sweeps.config.validation import load_config
    from sweeps.schedulers.builtin import stop_epochs

    cfg = load_config(
        [f"scheduler={scheduler}", f"max_epochs={max_epochs}"]
        + ([f"scheduler.grace_period={grace}"] if scheduler in ("asha", "median") else [])
        + ([f"scheduler.reduction_factor={factor}"] if scheduler in ("asha", "hyperband") else [])
    )
    assert stop_epochs(cfg) == expected


@pytest.mark.parametrize("max_t, eta", [(9, 3), (12, 3), (8, 2), (27, 3), (5, 2)])
def test_hyperband_milestones_are_tunes_own(max_t, eta):
    """The milestones read from Tune's brackets as they are built, halving after halving."""
    from ray.tune.schedulers.hyperband import HyperBandScheduler, _Bracket

    from sweeps.schedulers.builtin import hyperband_milestones

    tune_hb = HyperBandScheduler(time_attr="epoch", max_t=max_t, reduction_factor=eta)
    seen = set()
    for s in range(tune_hb._s_max_1):
        r0 = tune_hb._get_r0(s)
        if r0 == 0:
            continue
        bracket = _Bracket(time_attr="epoch", max_trials=tune_hb._get_n0(s), init_t_attr=r0, max_t_attr=max_t, eta=eta, s=s)
        bracket._live_trials = {f"t{i}": {"m": i} for i in range(tune_hb._get_n0(s))}  # stand-ins: sorted by m
        seen.add(bracket._cumul_r)
        for _ in range(s):
            bracket.successive_halving("m", 1.0)  # Tune's own step to the next milestone
            seen.add(bracket._cumul_r)
    assert hyperband_milestones(max_t, eta) == {m for m in seen if m < max_t}


def test_every_scheduler_has_one_registry_entry_one_yaml_and_is_validated():
    from sweeps.config.compose import CONF_DIR
    from sweeps.registry import SCHEDULERS  # what the runner builds from: the registry itself
    from sweeps.registry import SCHEDULERS as REGISTRY

    yamls = {p.stem for p in (CONF_DIR / "scheduler").glob("*.yaml")}
    assert set(REGISTRY) == set(SCHEDULERS) == yamls


def _settings(stop_epochs=frozenset({2, 6}), every_s=60.0):
    return TrialSettings(
        model={},
        input_shape=(8, 8, 1),
        num_classes=10,
        objectives=(("val_accuracy", "max"),),
        max_epochs=6,
        seed=0,
        cpus=1,
        stop_epochs=frozenset(stop_epochs),
        checkpoint_every_s=every_s,
    )


class _Weights:
    """Stands in for a Keras model's weight accessors only (the save path is tested below on Keras)."""

    def get_weights(self):
        return [np.zeros(1)]


@pytest.mark.parametrize(
    "stop_epochs, every_s, improved_at, expected_due",
    [
        ({2, 6}, 60.0, [1], {1: False, 2: True, 3: False}),  # written at the rung, not before
        ({2, 6}, 60.0, [], {1: False, 2: False, 6: False}),  # nothing better: nothing to write
        ({2, 6}, 0.0, [1], {1: True}),  # every better epoch, for retries
        (set(), 60.0, [3], {3: True}),  # rungs unknown: every better epoch
    ],
)
def test_a_checkpoint_is_due_at_stop_points_after_an_improvement(stop_epochs, every_s, improved_at, expected_due):
    kept = _BestWeights(_settings(stop_epochs, every_s))
    for epoch in sorted(expected_due):
        if epoch in improved_at:
            kept.remember(_Weights())
        assert kept.due(epoch) is expected_due[epoch], epoch


def _compiled_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def _equal(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.reliability
def test_a_checkpoint_is_one_snapshot_to_go_on_from_and_keeps_the_best_epochs_model(tmp_path):
    """Epoch 1 was the best, epoch 2 worse. The snapshot after epoch 2 must resume epoch 3 from
    epoch 2's weights *and* optimizer state (not epoch 1's weights with epoch 2's optimizer), with
    the best-so-far record and the best epoch's weights, which stay the kept model."""
    import keras

    from sweeps.core.protocol import MODEL_FILE
    from sweeps.worker.snapshots import complete_snapshot, load_snapshot

    x, y = np.random.default_rng(0).normal(size=(64, 3)), np.random.default_rng(1).normal(size=(64, 2))
    model = _compiled_model()
    kept = _BestWeights(_settings(every_s=0.0))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    kept.remember(model, 1)
    best = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # epoch 2: not remembered (worse)
    current = [w.copy() for w in model.get_weights()]
    moments = [v.numpy().copy() for v in model.optimizer.variables]
    kept.save(model, tmp_path, 2, {"val_accuracy": 0.9})
    assert _equal(model.get_weights(), current), "saving must not change the model that trains on"

    snapshot = load_snapshot(tmp_path)
    assert (snapshot.epoch, snapshot.best, snapshot.best_epoch) == (2, {"val_accuracy": 0.9}, 1)
    assert _equal(snapshot.model.get_weights(), current)
    assert int(snapshot.model.optimizer.iterations.numpy()) == 8  # 2 epochs x 4 batches
    assert _equal([v.numpy() for v in snapshot.model.optimizer.variables], moments)
    assert _equal(snapshot.best_weights, best)
    assert _equal(keras.saving.load_model(tmp_path / MODEL_FILE).get_weights(), best)  # the kept model
    # Training on from the snapshot is training on from epoch 2: the same next step either way.
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    snapshot.model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(model.get_weights(), snapshot.model.get_weights()))

    assert complete_snapshot(tmp_path)
    with open(tmp_path / MODEL_FILE, "r+b") as handle:  # a copy cut short by a kill
        handle.truncate(100)
    assert not complete_snapshot(tmp_path)


@pytest.mark.reliability
@pytest.mark.parametrize("every_s, expected", [(0.0, True), (60.0, False)])
def test_a_snapshot_is_due_every_interval_even_without_an_improvement(tmp_path, every_s, expected):
    """A killed driver or a dead worker loses at most checkpoint_every_s of a trial's work."""
    model = _compiled_model()
    kept = _BestWeights(_settings(stop_epochs={6}, every_s=every_s))
    kept.remember(model, 1)
    assert kept.due(1) is (every_s == 0.0)
    kept.save(model, tmp_path, 1, {"val_accuracy": 0.5})
    assert kept.due(2) is expected  # nothing better since: due only because the interval passed


@pytest.mark.slow
@pytest.mark.ray
def test_every_kept_checkpoint_scores_its_trials_best_epoch(tmp_path):
    """No scheduler: trials checkpoint only after their last epoch, yet what they keep is the best
    epoch's model, also when later epochs were worse (validation loss rising: overfitting)."""
    import optuna
    from mlflow import MlflowClient

    from models.conv2d import load_model
    from sweeps.data.datasets import load_dataset
    from tests.conftest import run_cli

    out = tmp_path / "outputs"
    result = run_cli(
        "run",
        "name=ckpt",
        "n_trials=4",
        "max_epochs=6",
        "scheduler=none",
        "sampler=random",
        "seed=1",
        "metric=val_loss",
        "mode=min",
        "dataset.limit=300",
        "resources.num_cpus=2",
        "tracking.log_best_model=false",
        "tracking.log_report=false",
        "space.learning_rate=choice(0.01,0.03)",
        "space.kernel_size=3",
        "space.padding=same",
        "space.filters=choice(16,32)",
        "space.dilation_rate=1",
        "space.kernel_regularizer_strength=0.0001",
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    study = optuna.load_study(study_name="ckpt", storage=f"sqlite:///{out / 'optuna.db'}")
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    data = load_dataset("digits", None, 0.2, 300, 1)
    worse_later = 0
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        history = [
            m.value
            for m in sorted(client.get_metric_history(trial.user_attrs["mlflow_run_id"], "val_loss"), key=lambda m: m.step)
        ]
        assert len(history) == 6 and trial.value == pytest.approx(min(history))
        loss, _ = load_model(trial.user_attrs["checkpoint"]).evaluate(data.x_val, data.y_val, verbose=0)
        assert loss == pytest.approx(trial.value, rel=1e-4)
        worse_later += history[-1] > min(history)
    assert worse_later >= 1, "no trial got worse after its best epoch: this sweep no longer tests the weight swap"
