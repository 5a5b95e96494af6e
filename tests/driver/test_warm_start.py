"""warm_start.from_sweep: an earlier sweep's finished trials become known results of a new sweep
(only what fits its space; what was dropped is said), recorded on the parent run; bad input exits 2
with nothing written."""

import optuna
import pytest
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution

from sweeps.config.validation import load_config
from sweeps.core.errors import ConfigError
from sweeps.driver.warmstart import RERUN_ATTR, WARM_ATTR, WarmStart, carry_over, load_warm_start, own_trials, rerun_points
from sweeps.execution.runner import first_points
from tests.conftest import run_cli

SPACE = ["space.learning_rate=tag(log,interval(0.001,0.1))", "space.filters=choice(8,16)", "space.kernel_size=3"]


def _trial(number, value, **params):
    dists = {
        "learning_rate": FloatDistribution(1e-5, 1.0, log=True),
        "filters": CategoricalDistribution([8, 16, 32]),
        "kernel_size": CategoricalDistribution([3, 5]),
    }
    trial = optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params}, value=value)
    trial.number = number
    return trial


@pytest.mark.parametrize(
    "params, carried, dropped",
    [
        ({"learning_rate": 0.01, "filters": 8}, {"learning_rate": 0.01, "filters": 8}, []),
        # a parameter this sweep does not search is dropped; the trial is kept
        (
            {"learning_rate": 0.01, "kernel_size": 5},
            {"learning_rate": 0.01},
            ["kernel_size (not searched by this sweep) from 1 trials"],
        ),
        # a value outside this sweep's range or choices: the trial is left out
        ({"learning_rate": 0.5, "filters": 8}, None, ["1 trials whose learning_rate lies outside this sweep's space"]),
        ({"learning_rate": 0.01, "filters": 32}, None, ["1 trials whose filters lies outside this sweep's space"]),
        # nothing of the new space at all: nothing to add
        ({"kernel_size": 3}, None, ["kernel_size (not searched by this sweep) from 1 trials"]),
    ],
)
def test_carry_over_keeps_only_what_the_new_space_holds(params, carried, dropped):
    space = load_config(SPACE).space
    trials, notes = carry_over("first", [_trial(7, 0.9, **params)], space)
    assert notes == dropped
    if carried is None:
        assert trials == []
    else:
        (trial,) = trials
        assert trial.params == carried and trial.value == 0.9 and trial.user_attrs == {WARM_ATTR: "first#7"}
        assert trial.distributions == {k: space.searched[k] for k in carried}


MAX, MIN = optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE


def _known(number, value, **params):
    """A carried trial (as carry_over makes it): its label, its value, its params in the new space."""
    dists = {"learning_rate": FloatDistribution(1e-3, 0.1, log=True), "filters": CategoricalDistribution([8, 16])}
    return optuna.trial.create_trial(
        params=params,
        distributions={k: dists[k] for k in params},
        values=None if value is None else [value] if not isinstance(value, tuple) else list(value),
        state=optuna.trial.TrialState.COMPLETE,
        user_attrs={WARM_ATTR: f"first#{number}"},
    )


A, B, C = {"learning_rate": 0.01, "filters": 8}, {"learning_rate": 0.02, "filters": 16}, {"learning_rate": 0.05, "filters": 8}


@pytest.mark.parametrize(
    "trials, directions, count, chosen",
    [
        # the best by the first objective, best first
        ([(0, 0.7, A), (1, 0.9, B), (2, 0.8, C)], [MAX], 1, [("first#1", B)]),
        ([(0, 0.7, A), (1, 0.9, B), (2, 0.8, C)], [MAX], 2, [("first#1", B), ("first#2", C)]),
        ([(0, 0.7, A), (1, 0.9, B), (2, 0.8, C)], [MIN], 2, [("first#0", A), ("first#2", C)]),
        # none asked: known results only
        ([(0, 0.7, A), (1, 0.9, B)], [MAX], 0, []),
        # more asked than there are: all of them
        ([(0, 0.7, A), (1, 0.9, B)], [MAX], 5, [("first#1", B), ("first#0", A)]),
        # a tie goes to the earlier trial, whatever the order given
        ([(5, 0.9, A), (3, 0.9, B)], [MAX], 1, [("first#3", B)]),
        # two trials the new space makes one point (a dropped param told them apart): run once, the next fills in
        ([(0, 0.9, A), (1, 0.85, dict(A)), (2, 0.8, C)], [MAX], 2, [("first#0", A), ("first#2", C)]),
        # a value that is not finite (a diverged loss's inf) is never chosen
        ([(0, float("inf"), A), (1, 0.5, B)], [MAX], 1, [("first#1", B)]),
        # several objectives: ranked by the first (the sweep's metric), the others ignored
        ([(0, (0.9, 5e5), A), (1, (0.8, 1e3), B)], [MAX, MIN], 1, [("first#0", A)]),
        # a point that leaves out a param (the sampler fills it in) is re-run as it is
        ([(0, 0.9, {"filters": 16})], [MAX], 1, [("first#0", {"filters": 16})]),
    ],
)
def test_rerun_points_are_the_earlier_best(trials, directions, count, chosen):
    assert rerun_points([_known(n, v, **p) for n, v, p in trials], directions, count) == chosen


def test_the_note_says_what_is_re_run():
    warm = WarmStart("first", (_known(1, 0.9, **B), _known(0, 0.7, **A)), 3, ("x (not searched by this sweep) from 3 trials",))
    warm = WarmStart(**{**warm.__dict__, "rerun": (("first#1", B),), "metric": "val_accuracy"})
    assert warm.note() == (
        "2 of 3 finished trials of sweep first added as known results; re-run first: first#1 (val_accuracy 0.9)"
        ' {"filters": 16, "learning_rate": 0.02}; dropped: x (not searched by this sweep) from 3 trials'
    )


def test_first_points_queue_given_points_then_reruns_then_add_the_known_results():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    known = (_known(1, 0.9, **B), _known(0, 0.7, **A))
    # the given point equals the best: queued once; a re-run equals a known result: still queued
    first_points(study, [dict(B), {"filters": 8}], (("first#1", B), ("first#0", A)), known)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 3
    asked = [study.ask() for _ in waiting]
    for trial in asked:
        trial.suggest_float("learning_rate", 1e-3, 0.1, log=True)
        trial.suggest_categorical("filters", [8, 16])
    assert asked[0].params == B and asked[1].params["filters"] == 8 and asked[2].params == A
    assert [t.user_attrs.get(RERUN_ATTR) for t in asked] == [None, None, "first#0"]
    assert sorted(t.user_attrs[WARM_ATTR] for t in study.trials if WARM_ATTR in t.user_attrs) == ["first#0", "first#1"]


def test_rerun_best_is_a_whole_number_from_zero():
    assert load_config([]).warm_start.rerun_best == 1
    assert load_config(["warm_start.rerun_best=0"]).warm_start.rerun_best == 0
    for bad in ("-1", "1.5", "two"):
        with pytest.raises(ConfigError) as info:
            load_config([f"warm_start.rerun_best={bad}"])
        assert info.value.key == "warm_start.rerun_best"


def test_own_trials_leave_out_the_added_ones():
    added = optuna.trial.create_trial(value=1.0, user_attrs={WARM_ATTR: "first#0"})
    ran = optuna.trial.create_trial(value=0.5)
    assert own_trials([added, ran]) == [ran]


def _storage(tmp_path):
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")


@pytest.mark.parametrize(
    "source, setup, problem",
    [
        ("nope", "finished", "no sweep named 'nope'"),
        ("second", "finished", "is this sweep itself"),
        ("first", "pruned", "has no finished (COMPLETE) trials"),
        ("first", "outside", "none of the 1 finished trials"),
        ("first", "minimise", "optimised minimize"),
    ],
)
def test_bad_warm_starts_name_the_field_and_the_fix(tmp_path, source, setup, problem):
    storage = _storage(tmp_path)
    study = optuna.create_study(study_name="first", storage=storage, direction="minimize" if setup == "minimise" else "maximize")
    if setup == "pruned":
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    else:
        study.add_trial(_trial(0, 0.9, learning_rate=0.5 if setup == "outside" else 0.01, filters=8))
    cfg = load_config(SPACE)
    with pytest.raises(ConfigError) as info:
        load_warm_start(source, "second", storage, cfg.space, cfg.objectives)
    assert info.value.key == "warm_start.from_sweep" and problem in info.value.problem, info.value
    assert info.value.fix


def test_another_metric_with_the_same_direction_is_refused(tmp_path):
    storage = _storage(tmp_path)
    optuna.create_study(study_name="first", storage=storage, direction="maximize").add_trial(
        _trial(0, 0.9, learning_rate=0.01, filters=8)
    )
    cfg = load_config(SPACE)
    with pytest.raises(ConfigError, match="same objectives"):
        load_warm_start("first", "second", storage, cfg.space, cfg.objectives, saved_objectives=["train_accuracy"])
    assert len(load_warm_start("first", "second", storage, cfg.space, cfg.objectives, ["val_accuracy"]).trials) == 1


def test_a_bad_name_is_refused_before_anything():
    with pytest.raises(ConfigError) as info:
        load_config(["warm_start.from_sweep=../x"])
    assert info.value.key == "warm_start.from_sweep"


COMMON = [
    "max_epochs=1",
    "dataset.limit=200",
    "seed=3",
    "scheduler=none",
    "resources.num_cpus=2",
    "tracking.log_report=false",
    "tracking.log_best_model=false",
    "space.padding=same",
    "space.dilation_rate=1",
]


@pytest.mark.slow
@pytest.mark.ray
def test_a_sweep_warm_started_from_an_earlier_one_adds_its_trials_and_records_it(tmp_path):
    out = tmp_path / "outputs"
    first = run_cli(
        "run",
        "name=first",
        "n_trials=4",
        "sampler=random",
        "space.learning_rate=tag(log,interval(0.001,0.1))",
        "space.filters=choice(8,16,32)",
        "space.kernel_size=choice(3,5)",
        *COMMON,
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    storage = f"sqlite:///{out / 'optuna.db'}"
    earlier = optuna.load_study(study_name="first", storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    fits = [t for t in earlier if t.params["filters"] in (8, 16)]
    assert earlier

    # Bad input: exit 2, the field named, nothing written for the new sweep.
    bad = run_cli("run", "name=bad", "n_trials=2", "warm_start.from_sweep=frist", *COMMON, f"output_dir={out}", cwd=tmp_path)
    assert bad.returncode == 2, bad.stdout[-2000:] + bad.stderr[-2000:]
    assert "warm_start.from_sweep" in bad.stderr and "first" in bad.stderr, bad.stderr
    assert optuna.study.get_all_study_names(optuna.storages.RDBStorage(storage)) == ["first"]
    assert not (out / "sweeps" / "bad").exists()

    second = run_cli(
        "run",
        "name=second",
        "n_trials=2",
        "sampler=tpe",
        "space.learning_rate=tag(log,interval(0.001,0.1))",
        "space.filters=choice(8,16)",  # filters=32 no longer allowed
        "space.kernel_size=3",  # no longer searched
        "warm_start.from_sweep=first",
        *COMMON,
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Warm start: " in second.stdout and "kernel_size (not searched by this sweep)" in second.stdout
    study = optuna.load_study(study_name="second", storage=storage)
    added = [t for t in study.trials if WARM_ATTR in t.user_attrs]
    assert sorted(t.user_attrs[WARM_ATTR] for t in added) == sorted(f"first#{t.number}" for t in fits)
    assert all("kernel_size" not in t.params and t.state.name == "COMPLETE" for t in added)
    assert {t.user_attrs[WARM_ATTR]: t.value for t in added} == {f"first#{t.number}": t.value for t in fits}
    assert len(own_trials(study.trials)) == 2  # n_trials counts the sweep's own trials only
    assert "Trials: 2 |" in second.stdout
    # The earlier best (warm_start.rerun_best=1 by default) is the sweep's first trial, re-run as it
    # was (kernel_size is this sweep's fixed 3); then the sampler proposes.
    best = min(fits, key=lambda t: (-t.value, t.number))
    rerun, proposed = sorted(own_trials(study.trials), key=lambda t: t.number)
    assert rerun.user_attrs[RERUN_ATTR] == f"first#{best.number}" and RERUN_ATTR not in proposed.user_attrs
    assert {k: rerun.params[k] for k in ("learning_rate", "filters")} == {k: best.params[k] for k in ("learning_rate", "filters")}
    assert rerun.state.name == "COMPLETE" and f"re-run first: first#{best.number} (val_accuracy " in second.stdout

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sweeps.name") == "second" and r.data.tags.get("sweeps.kind") == "sweep")
    assert parent.data.tags["sweeps.warm_start_from"] == "first"
    assert parent.data.tags["sweeps.warm_start_trials"] == str(len(fits))
    assert "kernel_size (not searched by this sweep)" in parent.data.tags["sweeps.warm_start_note"]
    assert f"re-run first: first#{best.number} (val_accuracy {best.value:.4g})" in parent.data.tags["sweeps.warm_start_note"]
    assert parent.data.params["warm_start.from_sweep"] == "first"
    # the best trial named in the summary is one of this sweep's own, with its own MLflow run
    trial_runs = {r.info.run_id for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert parent.data.tags["sweeps.best_run_id"] in trial_runs

    # On the first sweep's own space, seed and data, the re-run is the earlier trial again: every
    # trial is seeded with the sweep's seed (the same weights and batch order) and trains on the same
    # CPU threads, so the earlier best value comes back at once (what makes re-running it worth it).
    third = run_cli(
        "run",
        "name=third",
        "n_trials=1",
        "sampler=tpe",
        "space.learning_rate=tag(log,interval(0.001,0.1))",
        "space.filters=choice(8,16,32)",
        "space.kernel_size=choice(3,5)",
        "warm_start.from_sweep=first",
        *COMMON,
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    best = min(earlier, key=lambda t: (-t.value, t.number))
    (again,) = own_trials(optuna.load_study(study_name="third", storage=storage).trials)
    assert again.user_attrs[RERUN_ATTR] == f"first#{best.number}" and again.params == best.params
    assert again.value == best.value, (again.value, best.value)
