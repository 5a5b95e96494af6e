"""Issue 24 end to end, on the embedded digits with a held-out test split: the configured model is
trial 0 (outside the space and over its budget, as the user wrote it), infeasible proposals are
recorded but never trained nor counted, the champion is refit on train + validation and
registered, and the summary, the note and `report` set the champion against the baseline.
Asserted through MlflowClient and the Optuna study."""

import json

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.ray]

N_TRIALS = 4
MAX_PARAMS = 60000
OVERRIDES = [
    "name=bl",
    f"n_trials={N_TRIALS}",
    "max_epochs=2",
    "seed=1",
    "sampler=random",
    "scheduler=none",
    "resources.num_cpus=2",
    "tracking.registered_model=digits-bl",
    "space=small",  # an npz would get space=auto: the records below are the small space's
    # the configured model: a 5x5 kernel, outside the space's choice(1, 3); ~69,000 params, over max_params
    "model.kernel_size=5",
    "space.kernel_size=choice(1,3)",
    "space.filters=choice(16,32,64)",
    "space.strides=choice(1,2)",
    "space.dilation_rate=choice(1,2)",  # strides 2 with dilation 2: infeasible, redrawn
    "space.padding=same",
    f"space.max_params={MAX_PARAMS}",  # 64 filters: over it, redrawn
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from sklearn.datasets import load_digits

    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("baseline")
    digits = load_digits()
    images, labels = (digits.images * 16).astype(np.uint8), digits.target
    np.savez(root / "digits.npz", x_train=images[:700], y_train=labels[:700], x_test=images[1500:], y_test=labels[1500:])
    out = root / "outputs"
    args = [*OVERRIDES, "dataset=npz", f"dataset.path={root / 'digits.npz'}", f"output_dir={out}"]
    result = run_cli("run", *args, cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


@pytest.fixture(scope="module")
def records(sweep):
    out, _ = sweep
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("sweeps.kind") == "sweep")
    children = {r.info.run_id: r for r in runs if r.data.tags.get("sweeps.kind") == "trial"}
    study = optuna.load_study(study_name="bl", storage=f"sqlite:///{out / 'optuna.db'}")
    return client, parent, children, study


def test_trial_0_is_the_configured_model_outside_the_space_and_its_budget(records):
    from sweeps.space import BASELINE_ATTR, OUTSIDE_ATTR

    client, parent, children, study = records
    first = study.trials[0]
    assert first.user_attrs[BASELINE_ATTR] is True
    assert [t.number for t in study.trials if t.user_attrs.get(BASELINE_ATTR)] == [0]
    # every searched value from conf/model and the overrides (the small space searches the first five), kernel 5
    expected = {"filters": 32, "strides": 1, "dilation_rate": 1, "learning_rate": 1e-3, "kernel_regularizer_strength": 1e-4}
    assert first.params == expected
    assert first.user_attrs[OUTSIDE_ATTR] == {"kernel_size": 5}  # Optuna's choice(1, 3) cannot hold it
    assert first.user_attrs["outcome"] == "COMPLETE"  # not rejected for max_params: the budget bounds the search
    run = children[first.user_attrs["mlflow_run_id"]]
    assert run.data.tags["sweeps.baseline"].startswith("true")
    assert json.loads(run.data.tags["sweeps.baseline_outside_space"]) == {"kernel_size": 5}
    assert run.data.params["kernel_size"] == "5" and run.data.metrics["params"] > MAX_PARAMS
    assert not any(r.data.tags.get("sweeps.baseline") for rid, r in children.items() if rid != run.info.run_id)


def test_infeasible_proposals_are_recorded_but_never_trained_nor_counted(records, sweep):
    client, parent, children, study = records
    outcomes = [t.user_attrs["outcome"] for t in study.trials]
    infeasible = [t for t in study.trials if t.user_attrs["outcome"] == "INFEASIBLE"]
    assert infeasible, outcomes  # this seed proposes some
    assert len(study.trials) - len(infeasible) == N_TRIALS  # the budget: feasible trials only
    out, stdout = sweep
    # No worker saw an infeasible one: Tune made a trial (and its folder) for the trained ones only.
    assert len([p for p in (out / "ray" / "bl").iterdir() if p.is_dir()]) == N_TRIALS
    for trial in infeasible:
        assert trial.state == optuna.trial.TrialState.PRUNED and trial.constraints["plan"] > 0  # told to the sampler
        assert trial.user_attrs["infeasible_kind"] in ("strides_with_dilation", "pooling_leaves_nothing", "max_params")
        assert "tune_trial_id" not in trial.user_attrs
        run = children[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["sweeps.state"] == "INFEASIBLE" and run.info.status == "KILLED"
        assert run.data.tags["sweeps.infeasible_reason"] == trial.user_attrs["infeasible_reason"]
        assert client.get_metric_history(run.info.run_id, "val_accuracy") == []
    assert len(children) == len(study.trials)
    assert "redrawn, not counted" in stdout
    assert parent.data.metrics["trials_infeasible"] == len(infeasible)


def test_the_champion_is_refit_registered_and_both_are_test_scored_once(records):
    client, parent, children, study = records
    m = parent.data.metrics
    assert 0 <= m["test_accuracy"] <= 1 and 0 <= m["refit_test_accuracy"] <= 1  # the champion's checkpoint, the refit
    assert m["refit_epochs"] >= 1
    version = client.get_model_version_by_alias("digits-bl", "champion")
    assert version.run_id == parent.info.run_id  # the refit model, logged on the sweep's run, not a trial's
    assert float(version.tags["test_accuracy"]) == pytest.approx(m["refit_test_accuracy"], abs=1e-6)
    assert version.tags["sweeps.refit"] == "true"
    assert "train + validation (" in parent.data.tags["sweeps.refit"]
    assert "test/refit_test_score.json" in {a.path for a in client.list_artifacts(parent.info.run_id, "test")}


def test_the_refit_model_is_listed_with_the_sweeps_models(records, sweep):
    import sweeps

    client, parent, children, study = records
    models = sweeps.load("bl", sweep[0]).models  # as the Models tab filters: tags.sweeps.name
    (refit,) = models[models["source_run_id"] == parent.info.run_id].itertuples()
    assert refit.role == "champion" and refit.name == "bl-refit"  # crowned: the registered one
    champion = children[parent.data.tags["sweeps.best_run_id"]].data.tags["optuna.trial_number"]
    assert client.get_logged_model(refit.model_id).tags["sweeps.refit_of"] == champion


def test_summary_note_and_report_state_the_champion_against_the_baseline(records, sweep):
    from tests.conftest import run_cli

    client, parent, children, study = records
    out, stdout = sweep
    said = parent.data.tags["sweeps.against_baseline"].splitlines()
    baseline = study.trials[0]
    best_number = int(
        next(t.number for t in study.trials if t.user_attrs.get("mlflow_run_id") == parent.data.tags["sweeps.best_run_id"])
    )
    if best_number == 0:
        assert said[0].startswith("The best trial is the baseline (your configured model, trial #0)")
    else:
        assert said[0].startswith(f"Champion #{best_number} against the baseline (your configured model, trial #0): val_accuracy")
        assert f"against {baseline.values[0]:.4f}" in said[0] and "gain " in said[0]
        assert (
            said[1].startswith("test_accuracy (held-out split)")
            and f"{parent.data.metrics['baseline_test_accuracy']:.4f}" in said[1]
        )
    assert parent.data.metrics["baseline_val_accuracy"] == pytest.approx(baseline.values[0])
    assert said[-1] == "The baseline ran as configured, outside the space: kernel_size=5 is outside the space's choice(1, 3)"
    for line in said:
        assert line in stdout  # the summary
        assert f"- {line}" in parent.data.tags["mlflow.note.content"]  # the parent run's note
    assert "Refit: the champion's params trained on train + validation" in stdout
    report = run_cli("report", "bl", f"output_dir={out}", cwd=out.parent)
    assert report.returncode == 0, report.stderr[-2000:]
    assert said[0] in report.stdout


def test_too_many_infeasible_proposals_in_a_row_is_one_clear_error(tmp_path):
    """Only 4 filters fit the budget, 7 of the 8 choices do not: three rejected in a row stop the sweep."""
    from tests.conftest import run_cli

    out = tmp_path / "outputs"
    result = run_cli(
        "run",
        "name=hopeless",
        "n_trials=3",
        "max_epochs=1",
        "dataset.limit=200",
        "sampler=random",
        "scheduler=none",
        "resources.num_cpus=2",
        "tracking.log_report=false",
        "max_infeasible_in_a_row=3",
        "space.filters=choice(4,64,96,128,160,192,224,256)",
        "space.kernel_size=3",
        "space.padding=same",
        "space.dilation_rate=1",
        "space.max_params=12000",
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "space: the sampler proposed 3 infeasible nets in a row from the space searching" in errors[0]
    assert "rejected most: max_params" in errors[0] and "raise space.max_params" in errors[0]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sweeps.kind") == "sweep")
    assert parent.info.status == "FAILED" and "infeasible nets in a row" in parent.data.tags["sweeps.error"]
