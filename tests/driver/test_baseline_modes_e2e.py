"""The baseline with a warm start, a resume, PBT and no test split (real sweeps on the embedded
digits, which have no test split), asserted through the Optuna study and MlflowClient."""

import optuna
import pytest
from mlflow import MlflowClient

from sweeps.driver.warmstart import RERUN_ATTR, WARM_ATTR
from sweeps.space import BASELINE_ATTR

pytestmark = [pytest.mark.slow, pytest.mark.ray]

SMALL = [
    "max_epochs=1",
    "dataset.limit=300",
    "sampler=random",
    "scheduler=none",
    "resources.num_cpus=2",
    "tracking.log_report=false",
    "model.filters=16",  # inside the space: the warm start can carry the baseline over
    "space.filters=choice(8,16)",
    "space.learning_rate=tag(log,interval(0.0001,0.01))",
    "space.kernel_size=3",
    "space.padding=same",
    "space.dilation_rate=1",
    "space.kernel_regularizer_strength=0.0001",
]


def _parent(client, name):
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id], max_results=1000)
    return next(r for r in runs if r.data.tags.get("sweeps.kind") == "sweep" and r.data.tags.get("sweeps.name") == name)


def test_no_test_split_warm_start_and_resume(tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "outputs"
    first = run_cli(
        "run",
        "name=first",
        "n_trials=2",
        "seed=0",
        "tracking.registered_model=digits-wr",
        *SMALL,
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    storage = f"sqlite:///{out / 'optuna.db'}"
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    # No test split: the refit model is registered all the same, and the note says it was not scored.
    parent = _parent(client, "first")
    version = client.get_model_version_by_alias("digits-wr", "champion")
    assert version.run_id == parent.info.run_id and version.tags["sweeps.refit"] == "true"
    assert "test_accuracy" not in version.tags and "refit_test_accuracy" not in parent.data.metrics
    assert "The refit model was not test-scored: the dataset has no test split" in parent.data.tags["mlflow.note.content"]
    assert "No test split: the comparison is on the validation split only" in first.stdout

    # A warm start: the baseline first, then the earlier best re-run (once, as the baseline, if it is the same point).
    second = run_cli(
        "run", "name=second", "n_trials=3", "seed=1", "warm_start.from_sweep=first", *SMALL, f"output_dir={out}", cwd=tmp_path
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    earlier = optuna.load_study(study_name="first", storage=storage)
    earlier_best = max(earlier.trials, key=lambda t: t.values[0] if t.values else -1)
    study = optuna.load_study(study_name="second", storage=storage)
    own = sorted((t for t in study.trials if WARM_ATTR not in t.user_attrs), key=lambda t: t.number)
    assert len(own) == 3 and own[0].number == 0 and own[0].user_attrs[BASELINE_ATTR] is True
    assert own[0].params == {"filters": 16, "learning_rate": 1e-3}
    if earlier_best.user_attrs.get(BASELINE_ATTR):  # the earlier best is this model: not evaluated twice
        assert own[0].user_attrs[RERUN_ATTR] == "first#0" and not any(RERUN_ATTR in t.user_attrs for t in own[1:])
    else:
        assert own[1].user_attrs[RERUN_ATTR] == f"first#{earlier_best.number}" and own[1].params == earlier_best.params
    assert (
        sum(bool(t.user_attrs.get(BASELINE_ATTR)) for t in study.trials) == 1
    )  # the earlier baseline carried as a known result only
    assert "the baseline (your configured model, trial #0)" in second.stdout

    # A resume runs what is left; the baseline is not enqueued again.
    resumed = run_cli("resume", "second", "n_trials=4", f"output_dir={out}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    study = optuna.load_study(study_name="second", storage=storage)
    own = [t for t in study.trials if WARM_ATTR not in t.user_attrs]
    assert len(own) == 4 and [t.number for t in own if t.user_attrs.get(BASELINE_ATTR)] == [0]
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id], max_results=1000)
    baselines = [
        r
        for r in runs
        if r.data.tags.get("sweeps.baseline") and r.data.tags.get("mlflow.parentRunId") == _parent(client, "second").info.run_id
    ]
    assert len(baselines) == 1


def test_under_pbt_the_baseline_is_one_member(tmp_path):
    from tests.conftest import PBT_LEARNING_RATE_ONLY, run_cli

    out = tmp_path / "outputs"
    result = run_cli(
        "run",
        "name=pbtb",
        "scheduler=pbt",
        "scheduler.perturbation_interval=1",
        "scheduler.quantile_fraction=0.5",
        "n_trials=2",
        "max_epochs=2",
        "dataset.limit=300",
        "seed=5",
        "resources.num_cpus=2",
        "tracking.log_report=false",
        "tracking.log_best_model=false",
        *PBT_LEARNING_RATE_ONLY,
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    study = optuna.load_study(study_name="pbtb", storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(study.trials) == 2
    members = [t for t in study.trials if t.user_attrs.get(BASELINE_ATTR)]
    assert [t.number for t in members] == [0] and members[0].params == {"learning_rate": 1e-3}  # the model's, not sampled
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    run = client.get_run(members[0].user_attrs["mlflow_run_id"])
    assert run.data.tags["sweeps.baseline"].startswith("true") and float(run.data.params["learning_rate"]) == 1e-3
    assert "the baseline (your configured model, trial #0)" in result.stdout
