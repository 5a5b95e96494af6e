"""stop_at (Katib's objective.goal): the sweep ends once a trial reaches the value, and says why."""

import optuna
import pytest
from mlflow import MlflowClient

from sweeps.config.validation import load_config
from sweeps.core.errors import ConfigError
from sweeps.core.protocol import reached_goal


@pytest.mark.parametrize(
    "value, goal, mode, expected",
    [
        (0.98, 0.98, "max", True),
        (0.97, 0.98, "max", False),
        (0.2, 0.3, "min", True),
        (0.4, 0.3, "min", False),
        (1.0, None, "max", False),
    ],
)
def test_reached_goal(value, goal, mode, expected):
    assert reached_goal(value, goal, mode) is expected


@pytest.mark.parametrize(
    "overrides, key, fix",
    [
        (["stop_at=5"], "stop_at", "fraction in (0, 1]"),
        (["stop_at=abc"], "stop_at", "stop_at=<number>"),
    ],
)
def test_a_goal_no_accuracy_can_reach_is_refused(overrides, key, fix):
    with pytest.raises(ConfigError) as info:
        load_config(overrides)
    assert info.value.key == key and fix in info.value.fix


def test_a_loss_goal_is_any_number_and_none_is_no_goal():
    assert load_config(["metric=val_loss", "mode=min", "stop_at=0.5"]).stop_at == 0.5
    assert load_config([]).stop_at is None


@pytest.mark.slow
@pytest.mark.ray
def test_the_sweep_ends_when_a_trial_reaches_stop_at(tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "outputs"
    result = run_cli(
        "run",
        "name=goal",
        "n_trials=8",
        "max_epochs=4",
        "dataset.limit=300",
        "sampler=random",
        "seed=2",
        "scheduler=none",
        "resources.num_cpus=2",
        "tracking.log_report=false",
        "tracking.log_best_model=false",
        "space.learning_rate=0.01",
        "space.filters=8",
        "stop_at=0.2",
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Ended early, goal met: stop_at reached" in result.stdout
    study = optuna.load_study(study_name="goal", storage=f"sqlite:///{out / 'optuna.db'}")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    # The trial that reached it ends complete at that epoch; not every trial of n_trials trained.
    assert complete and any(t.value >= 0.2 for t in complete)
    trained = [t for t in study.trials if t.user_attrs.get("outcome") in ("COMPLETE", "PRUNED")]
    assert len(trained) < 8, [t.user_attrs.get("outcome") for t in study.trials]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sweeps.kind") == "sweep")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweeps.ended_because"].startswith("stop_at reached: trial ")
    assert "goal met" in parent.data.tags["mlflow.note.content"]
    tune_id = parent.data.tags["sweeps.ended_because"].split()[3]
    goal_run = next(r for r in runs if r.data.tags.get("tune.trial_id") == tune_id)
    assert goal_run.data.tags["sweeps.state"] == "COMPLETE" and goal_run.info.status == "FINISHED"
    epochs = int(goal_run.data.tags["sweeps.epochs"])
    history = sorted(client.get_metric_history(goal_run.info.run_id, "val_accuracy"), key=lambda m: m.step)
    # it trained up to the first epoch at the goal and no further
    assert history[-1].step == epochs and history[-1].value >= 0.2 and all(m.value < 0.2 for m in history[:-1])


@pytest.mark.parametrize(
    "point, key, problem",
    [
        ("{learning_rat:0.01}", "warm_start.points[0].learning_rat", "not a searched parameter"),
        ("{learning_rate:5.0}", "warm_start.points[0].learning_rate", "outside the space"),
        ("{filters:12}", "warm_start.points[0].filters", "outside the space"),
    ],
)
def test_a_warm_start_point_outside_the_space_is_refused(point, key, problem):
    with pytest.raises(ConfigError) as info:
        load_config(
            ["space.learning_rate=tag(log,interval(0.001,0.1))", "space.filters=choice(8,16)", f"warm_start.points=[{point}]"]
        )
    assert info.value.key == key and problem in info.value.problem


@pytest.mark.slow
@pytest.mark.ray
def test_warm_start_points_are_evaluated_first_and_recorded(tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "outputs"
    result = run_cli(
        "run",
        "name=warm",
        "n_trials=3",
        "max_epochs=1",
        "dataset.limit=200",
        "sampler=random",
        "seed=2",
        "scheduler=none",
        "resources.num_cpus=1",
        "tracking.log_report=false",
        "tracking.log_best_model=false",
        "space.learning_rate=tag(log,interval(0.001,0.1))",
        "space.filters=choice(8,16,32)",
        "warm_start.points=[{learning_rate:0.0123,filters:32},{filters:8}]",
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    study = optuna.load_study(study_name="warm", storage=f"sqlite:///{out / 'optuna.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert {k: trials[0].params[k] for k in ("learning_rate", "filters")} == {"learning_rate": 0.0123, "filters": 32}
    assert trials[1].params["filters"] == 8 and trials[1].params["learning_rate"] != 0.0123  # the sampler filled the rest
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    parent = next(
        r
        for r in client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
        if r.data.tags.get("sweeps.kind") == "sweep"
    )
    assert parent.data.tags["sweeps.warm_start"].startswith("2 given points, evaluated first: ")
