"""scheduler=pbt for real: Tune's PBT with its own seeded random population (it refuses a searcher);
a member that clones a better one goes on from exactly the checkpoint PBT hands it, with explored
params logged as a time series on its MLflow run, and every member told to Optuna."""

import json
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sweeps.config.validation import load_config
from sweeps.core.errors import ConfigError
from sweeps.registry import SCHEDULERS
from sweeps.schedulers.builtin import pause_epochs, stop_epochs
from sweeps.schedulers.pbt import _KeepInside
from sweeps.space import pbt_mutations


def _trial_runs(client):
    """The sweep's trial runs (not its parent run)."""
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    return [r for r in runs if r.data.tags.get("sweeps.kind") == "trial"]


def test_pbt_explores_the_continuous_params_every_model_has():
    cfg = load_config(
        [
            "scheduler=pbt",
            "space.learning_rate=tag(log,interval(0.0001,0.1))",
            "space.dropout=interval(0.0,0.5)",
            "space.kernel_regularizer=choice(none,l2)",
            "space.kernel_regularizer_strength=tag(log,interval(0.00001,0.01))",  # exists only with a regularizer
        ]
    )
    assert sorted(pbt_mutations(cfg.space)) == ["dropout", "learning_rate"]
    assert cfg.sampler.name == "random"  # its own population: see sweeps.schedulers.pbt.Population
    assert cfg.resolved["sampler"]["name"] == "random"  # the record says what ran


@pytest.mark.parametrize(
    "overrides, key, words",
    [
        (["scheduler=pbt", "sampler=tpe"], "sampler", "refuses a searcher"),
        (["scheduler=pbt", "space.learning_rate=choice(0.01,0.1)"], "scheduler", "continuous"),
        (["scheduler=pbt", "max_epochs=2", "scheduler.perturbation_interval=2"], "scheduler.perturbation_interval", "no step"),
        (["scheduler=pbt", "scheduler.quantile_fraction=0.6"], "scheduler.quantile_fraction", "more than half"),
    ],
)
def test_what_pbt_cannot_run_is_refused(overrides, key, words):
    with pytest.raises(ConfigError) as info:
        load_config(overrides)
    assert info.value.key == key and words in info.value.problem, info.value


def test_checkpoints_where_pbt_may_clone_and_no_stop():
    cfg = load_config(["scheduler=pbt", "max_epochs=7", "scheduler.perturbation_interval=2"])
    assert pause_epochs(cfg) == {2, 4, 6} and stop_epochs(cfg) == {7}
    assert "pbt" in SCHEDULERS


def test_explored_values_stay_inside_the_space():
    keep = _KeepInside({"learning_rate": (1e-4, 1e-2), "dropout": (0.0, 0.5)})
    member = {"learning_rate": 0.012, "dropout": 0.3, "filters": 8}
    assert keep({"pbt_member": member}) == {"pbt_member": {"learning_rate": 0.01, "dropout": 0.3, "filters": 8}}


@pytest.mark.slow
@pytest.mark.ray
def test_pbt_members_clone_from_the_checkpoint_pbt_hands_them_and_are_recorded(tmp_path):
    from tests.conftest import PBT_LEARNING_RATE_ONLY, run_cli

    out = tmp_path / "outputs"
    result = run_cli(
        "run",
        "name=pbt",
        "scheduler=pbt",
        # two members on two slots, a step after every epoch: the worse clones the better as soon as
        # the better has been checkpointed at a step (Tune's PBT clones only a trial saved in its top quantile)
        "scheduler.perturbation_interval=1",
        "scheduler.quantile_fraction=0.5",
        "n_trials=2",
        # Tune's async PBT clones only a member saved in its top quantile at one of its own steps, so
        # the members must overlap in time; 8 epochs leave room for one worker starting late (load)
        "max_epochs=8",
        "dataset.limit=300",
        "seed=5",  # learning rates 1.8e-6 and 0.0092
        "baseline=false",  # two sampled members (the baseline as a member: test_baseline_modes_e2e)
        "resources.num_cpus=2",
        "tracking.log_report=false",
        "tracking.log_best_model=false",
        "resources.keep_checkpoints=null",
        *PBT_LEARNING_RATE_ONLY,
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "scheduler=pbt: a population of 2 sampled at random" in result.stdout
    study = optuna.load_study(study_name="pbt", storage=f"sqlite:///{out / 'optuna.db'}")
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = {r.info.run_id: r for r in _trial_runs(client)}
    assert len(study.trials) == 2 and len(runs) == 2
    by_tune_id = {r.data.tags["tune.trial_id"]: r for r in runs.values()}
    clones = 0
    for trial in study.trials:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert (trial.state.name, run.info.status, run.data.tags["sweeps.state"]) == ("COMPLETE", "FINISHED", "COMPLETE")
        # the value each epoch trained with; an epoch still running when PBT cloned another trial into
        # this one is logged, then trained again from the clone (its step twice); a clone may also go
        # on from a source that was ahead (steps skipped)
        lr = sorted(client.get_metric_history(run.info.run_id, "pbt/learning_rate"), key=lambda m: (m.step, m.timestamp))
        steps = [m.step for m in lr]
        assert steps[0] == 1 and steps[-1] == 8, steps
        assert lr[0].value == pytest.approx(trial.params["learning_rate"])
        state = json.loads((Path(trial.user_attrs["checkpoint"]).parent / "state.json").read_text())
        if "sweeps.pbt_clones" not in run.data.tags:
            assert steps == list(range(1, 9)) and len({m.value for m in lr}) == 1 and "pbt_final_params" not in trial.user_attrs
            continue
        events = run.data.tags["sweeps.pbt_clones"].split("; ")
        clones += len(events)
        for event in events:  # "epoch 3: went on from trial <id> (run <id>) at epoch 2, learning_rate=0.01"
            epoch = int(event.split(":")[0].removeprefix("epoch "))
            at = {m.step: m.value for m in lr}  # the last value of a step: after the clone
            assert at[epoch] == pytest.approx(float(event.rsplit("learning_rate=", 1)[1]), rel=1e-5)
            # explored from the source's value: x0.8, x1.2 or resampled (not the source's own)
            source = by_tune_id[event.split("went on from trial ")[1].split()[0]]
            theirs = [m.value for m in client.get_metric_history(source.info.run_id, "pbt/learning_rate") if m.step == epoch - 1]
            assert theirs and at[epoch] not in theirs, (at[epoch], theirs)
        # after its last clone it went on from the source's snapshot: its epoch before is the source's
        source = by_tune_id[events[-1].split("went on from trial ")[1].split()[0]]
        theirs = [m.value for m in client.get_metric_history(source.info.run_id, "val_accuracy") if m.step == epoch - 1]
        before = next(h for h in state["history"] if h["epoch"] == epoch - 1)
        assert any(v == pytest.approx(before["val_accuracy"]) for v in theirs), (theirs, state["history"])
        assert trial.user_attrs["pbt_final_params"]["learning_rate"] == pytest.approx(lr[-1].value)
    assert clones >= 1


@pytest.mark.slow
@pytest.mark.ray
def test_a_clone_that_starts_late_restores_the_checkpoint_pbt_handed_it(tmp_path):
    """The checkpoint PBT hands a clone lives until the clone has restored it, however far its source
    trains first; then it goes, as every checkpoint but a trial's newest (disk stays bounded).

    Forced by the schedule, not by the machine's load: one slot, so PBT time-shares it (its
    choose_trial_to_run: the member with the fewest epochs first, ties in creation order). The better
    member (first, by the warm-start points) saves at every epoch (checkpoint_every_s=0). At epoch 8
    the worse one clones its epoch-8 checkpoint and waits: the exploit gave it its source's 8 epochs,
    and the source, created first, takes the slot and trains epochs 9-12 (four newer checkpoints)
    before the clone restores. With Tune's num_to_keep=4 the clone found the handed one deleted."""
    from tests.conftest import PBT_LEARNING_RATE_ONLY, run_cli

    out = tmp_path / "outputs"
    result = run_cli(
        "run",
        "name=pbt-late",
        "scheduler=pbt",
        "scheduler.perturbation_interval=4",  # steps at epochs 4, 8, 12
        "scheduler.quantile_fraction=0.5",
        "n_trials=2",
        "max_epochs=13",
        "warm_start.points=[{learning_rate:0.005},{learning_rate:0.0000001}]",  # the better member first
        "baseline=false",
        "resources.num_cpus=1",  # one slot
        "resources.checkpoint_every_s=0",  # a checkpoint after every epoch
        "resources.keep_checkpoints=null",
        "dataset.limit=300",
        "seed=5",
        "tracking.log_report=false",
        "tracking.log_best_model=false",
        *PBT_LEARNING_RATE_ONLY,
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    study = optuna.load_study(study_name="pbt-late", storage=f"sqlite:///{out / 'optuna.db'}")
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = {r.data.tags["tune.trial_id"]: r for r in _trial_runs(client)}
    assert len(study.trials) == 2 and len(runs) == 2
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert {r.data.tags["sweeps.state"] for r in runs.values()} == {"COMPLETE"}, {
        r.data.tags.get("sweeps.error") for r in runs.values()
    }

    def timestamps(run, step):  # when the driver logged that epoch of the run (twice: trained again after a clone)
        return [m.timestamp for m in client.get_metric_history(run.info.run_id, "val_accuracy") if m.step == step]

    late = 0
    for clone in (r for r in runs.values() if "sweeps.pbt_clones" in r.data.tags):
        # each event: "epoch 9: went on from trial <id> (run <id>) at epoch 8, learning_rate=..."
        for event in clone.data.tags["sweeps.pbt_clones"].split("; "):
            epoch = int(event.split(":")[0].removeprefix("epoch "))
            source = runs[event.split("went on from trial ")[1].split()[0]]
            restored = max(timestamps(clone, epoch))  # its first epoch from the handed checkpoint
            # the source had saved 4 newer checkpoints (epochs epoch..epoch+3) before the clone restored
            late += bool(timestamps(source, epoch + 3)) and min(timestamps(source, epoch + 3)) < restored
    assert late >= 1, {r.data.tags["tune.trial_id"]: r.data.tags.get("sweeps.pbt_clones") for r in runs.values()}
    for trial in study.trials:  # the handed one and every older checkpoint deleted: each trial keeps its newest
        newest = Path(trial.user_attrs["checkpoint"]).parent
        assert sorted(newest.parent.glob("checkpoint_*")) == [newest]
