"""A real sweep end to end: Hydra -> Optuna -> Ray Tune -> Keras -> MLflow, asserted through MlflowClient."""

import optuna
import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.ray]

N_TRIALS = 6
MAX_EPOCHS = 3
OVERRIDES = [
    "name=e2e",
    f"n_trials={N_TRIALS}",
    f"max_epochs={MAX_EPOCHS}",
    "dataset.limit=400",
    "seed=3",
    "sampler=random",
    "scheduler=asha",
    "scheduler.grace_period=1",
    "scheduler.reduction_factor=2",
    "resources.num_cpus=2",
    # a tiny learning rate is hopeless (pruned); kernel 5 with dilation 2 on 8x8 'valid' is infeasible
    "space.learning_rate=choice(0.000001,0.01)",
    "space.kernel_size=choice(1,5)",
    "space.dilation_rate=2",
    "space.padding=valid",
    "space.filters=choice(8,16)",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("sweep") / "outputs"
    result = run_cli("run", *OVERRIDES, f"output_dir={out}", cwd=out.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


@pytest.fixture(scope="module")
def client(sweep):
    out, _ = sweep
    return MlflowClient(f"sqlite:///{out / 'mlflow.db'}")


def _runs(client):
    exp = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweeps.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("sweeps.kind") == "trial"]
    return parents, children


def test_one_parent_and_one_nested_run_per_trial(client):
    parents, children = _runs(client)
    # infeasible proposals have their runs too, beside the N_TRIALS trials they do not count in
    trained = [c for c in children if c.data.tags["sweeps.state"] != "INFEASIBLE"]
    assert len(parents) == 1 and len(trained) == N_TRIALS and len(children) > N_TRIALS
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert parent.data.params["n_trials"] == str(N_TRIALS) and parent.data.params["space.learning_rate"].startswith("choice")
    assert parent.data.tags["sweeps.sampler"] == "random" and parent.data.tags["sweeps.scheduler"] == "asha"
    assert "config/resolved.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id, "config")}
    # the report's table and plots, logged at the end so the MLflow UI shows them
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/trials.csv", "report/optimization_history.png", "report/learning_curves.html"} <= report


def test_states_agree_between_optuna_and_mlflow(sweep, client):
    out, _ = sweep
    study = optuna.load_study(study_name="e2e", storage=f"sqlite:///{out / 'optuna.db'}")
    assert sum(t.user_attrs["outcome"] != "INFEASIBLE" for t in study.trials) == N_TRIALS
    _, children = _runs(client)
    assert len(children) == len(study.trials)
    by_run = {c.info.run_id: c for c in children}
    states = []
    for trial in study.trials:
        run = by_run[trial.user_attrs["mlflow_run_id"]]
        outcome = trial.user_attrs["outcome"]
        states.append(outcome)
        assert run.data.tags["sweeps.state"] == outcome
        expected = {"COMPLETE": ("COMPLETE", "FINISHED"), "PRUNED": ("PRUNED", "KILLED"), "INFEASIBLE": ("PRUNED", "KILLED")}
        assert (trial.state.name, run.info.status) == expected[outcome]
        # the baseline's run holds its values outside the space too (kernel_size 3 against choice(1, 5))
        assert set(trial.params) | set(trial.user_attrs.get("baseline_outside_space", {})) == set(run.data.params)
        assert "sweeps.retries" not in run.data.tags  # nothing failed, so nothing was retried
    assert {"COMPLETE", "PRUNED", "INFEASIBLE"} <= set(states), states


def test_per_epoch_metrics_and_dataset_inputs(sweep, client):
    parents, children = _runs(client)
    digest = parents[0].data.tags["dataset.digest"]
    assert [d.dataset.digest for d in parents[0].inputs.dataset_inputs] == [digest]
    for run in children:
        assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [digest]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        state = run.data.tags["sweeps.state"]
        if state != "INFEASIBLE":  # where it ran: this machine's CPU, a Ray node
            assert run.data.tags["sweeps.device"] == "CPU" and run.data.tags["sweeps.node_id"]
        if state == "COMPLETE":
            assert sorted(m.step for m in history) == list(range(1, MAX_EPOCHS + 1))
            for name in ("train_loss", "train_accuracy", "val_loss"):
                assert len(client.get_metric_history(run.info.run_id, name)) == MAX_EPOCHS
        elif state == "PRUNED":
            assert 1 <= len(history) < MAX_EPOCHS
        else:
            assert history == [] and "effective kernel" in run.data.tags["sweeps.infeasible_reason"]


def test_best_model_is_logged_and_predicts(sweep, client):
    import mlflow.keras
    import numpy as np

    out, stdout = sweep
    parents, children = _runs(client)
    best_run = parents[0].data.tags["sweeps.best_run_id"]
    best_child = next(c for c in children if c.info.run_id == best_run)
    assert best_child.data.tags["sweeps.state"] == "COMPLETE"
    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    model = mlflow.keras.load_model(parents[0].data.tags["sweeps.best_model_uri"])
    assert model.predict(np.zeros((3, 8, 8, 1), np.float32), verbose=0).shape == (3, 10)
    # The kept checkpoint holds the best epoch's weights: on the sweep's own validation split the
    # logged model scores exactly the best val_accuracy its trial reported.
    from sweeps.data.datasets import load_dataset

    data = load_dataset("digits", None, 0.2, 400, 3)
    _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
    assert accuracy == pytest.approx(best_child.data.metrics["best_val_accuracy"], abs=1e-6)
    assert parents[0].data.tags["sweeps.registered_model"].startswith("models:/digits-conv2d@champion")
    assert "Best trial #" in stdout and "val_accuracy = " in stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in stdout
    assert "completed" in stdout and "stopped early" in stdout and "failed" in stdout


def test_outputs_stay_in_the_output_folder(sweep):
    out, _ = sweep
    assert {p.name for p in out.parent.iterdir()} == {"outputs"}
    assert {"mlflow.db", "optuna.db", "ray", "mlartifacts"} <= {p.name for p in out.iterdir()}
    trials = [p for p in (out / "ray" / "e2e").iterdir() if p.is_dir()]
    assert len(trials) == N_TRIALS
    # Results live in MLflow only: none of Tune's own loggers (JSON, CSV, TensorBoard) writes beside them.
    assert not [p.name for p in (out / "ray").rglob("*") if p.name in ("result.json", "progress.csv", "params.json")]
    assert not list((out / "ray").rglob("events.out.tfevents*"))


def test_same_name_again_is_refused(sweep, cli):
    out, _ = sweep
    result = cli("run", "name=e2e", f"output_dir={out}", cwd=out.parent)
    assert result.returncode == 2 and "already exists" in result.stderr
