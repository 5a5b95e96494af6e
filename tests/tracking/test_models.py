"""The sweep's models as MLflow 3 sees them (tracking.models), on one real small sweep: each kept
checkpoint a logged model with its params, its metrics at its step linked to it and to the dataset
version; retention's deletions reach MLflow; the champion is the best one, registered and listed on
the parent run; the links open the trials' table as its saved view has it; `sweeps.load().models`.
"""

import json
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

NAME = "models"
N_TRIALS, EPOCHS, KEEP = 4, 2, 2


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    import optuna

    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("models")
    out = root / "out"
    result = run_cli(
        "run",
        f"name={NAME}",
        f"n_trials={N_TRIALS}",
        f"max_epochs={EPOCHS}",
        "dataset.limit=300",
        "scheduler=none",
        "sampler=random",
        "refit=false",  # the champion here is the best trial's checkpoint (the refit's: tests/driver/test_baseline_e2e.py)
        "resources.num_cpus=2",
        f"resources.keep_checkpoints={KEEP}",
        "tracking.log_report=false",
        f"output_dir={out}",
        cwd=root,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sweeps.kind") == "sweep")
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{out / 'optuna.db'}")
    models = client.search_logged_models([experiment.experiment_id], filter_string=f"tags.`sweeps.name` = '{NAME}'")
    return {
        "out": out,
        "uri": uri,
        "client": client,
        "experiment": experiment,
        "parent": parent,
        "runs": {r.info.run_id: r for r in runs},
        "study": study,
        "models": models,
        "stdout": result.stdout,
    }


def _ranked(study):
    done = [t for t in study.trials if t.value is not None]
    return sorted(done, key=lambda t: (-t.value, t.number))


def test_each_kept_checkpoint_is_a_logged_model_of_its_trial(sweep):
    kept = _ranked(sweep["study"])[:KEEP]
    models = {m.name: m for m in sweep["models"]}
    assert set(models) == {f"{NAME}-trial-{t.number:03d}" for t in kept}, sorted(models)
    digest = sweep["parent"].data.tags["dataset.digest"]
    for trial in kept:
        model = models[f"{NAME}-trial-{trial.number:03d}"]
        run_id = trial.user_attrs["mlflow_run_id"]
        assert model.source_run_id == run_id and str(model.status) in ("READY", "LoggedModelStatus.READY")
        assert model.params == {k: str(v) for k, v in trial.params.items()}
        # Its source is the sweep's command, not __main__.py.
        assert model.tags["mlflow.source.name"] == f"python -m sweeps run name={NAME}"
        # Logged at its best epoch, the one whose val_accuracy is the trial's objective.
        points = sweep["client"].get_metric_history(run_id, "val_accuracy")
        assert sorted(m.step for m in points) == list(range(1, EPOCHS + 1))  # the model's metrics added none
        history = {m.step: m.value for m in points}
        best_epoch = max(history, key=lambda s: (history[s], -s))
        metrics = {m.key: m for m in model.metrics}
        assert {"best_val_accuracy", "val_accuracy", "val_loss", "train_loss", "train_accuracy"} <= set(metrics)
        assert {m.step for m in model.metrics} == {best_epoch}
        assert metrics["best_val_accuracy"].value == pytest.approx(trial.value)
        assert metrics["val_accuracy"].value == pytest.approx(history[best_epoch])
        assert all(m.model_id == model.model_id and m.dataset_digest == digest and m.dataset_name for m in model.metrics)
        # The trial's run lists it as its output at that step.
        outputs = sweep["client"].get_run(run_id).outputs.model_outputs
        assert [(o.model_id, o.step) for o in outputs] == [(model.model_id, best_epoch)]


def test_a_dropped_checkpoint_leaves_no_model_behind(sweep):
    kept = {t.user_attrs["mlflow_run_id"] for t in _ranked(sweep["study"])[:KEEP]}
    dropped = [r for r in sweep["runs"].values() if r.data.tags.get("sweeps.kind") == "trial" and r.info.run_id not in kept]
    assert len(dropped) == N_TRIALS - KEEP
    for run in dropped:
        if run.data.tags["sweeps.state"] == "COMPLETE":  # one that did not finish kept nothing
            assert run.data.tags["sweeps.checkpoint"].startswith("deleted")
        for output in run.outputs.model_outputs if run.outputs else []:  # one logged before it was dropped
            with pytest.raises(MlflowException, match="not found"):
                sweep["client"].get_logged_model(output.model_id)
    assert {m.source_run_id for m in sweep["models"]} == kept
    for model in sweep["models"]:  # its files are there
        assert (Path(model.artifact_location.removeprefix("file://")) / "data" / "model.keras").is_file()


def test_the_models_tab_order_is_the_ranking(sweep):
    """The Models tab lists models newest first (its sort cannot be set by URL): they are logged worst first."""
    newest_first = sorted(sweep["models"], key=lambda m: m.creation_timestamp, reverse=True)
    assert [m.name for m in newest_first] == [f"{NAME}-trial-{t.number:03d}" for t in _ranked(sweep["study"])[:KEEP]]
    assert len({m.creation_timestamp for m in sweep["models"]}) == KEEP


def test_the_champion_is_the_best_trials_model_registered_and_on_the_parent_run(sweep):
    from tracking import load_model_and_preprocessing

    best = sweep["study"].best_trial
    champion = next(m for m in sweep["models"] if m.name == f"{NAME}-trial-{best.number:03d}")
    version = sweep["client"].get_model_version_by_alias("digits-conv2d", "champion")
    # The sqlite registry keeps no model_id on a version: its source is the logged model's files.
    assert champion.model_id in version.source and version.run_id == best.user_attrs["mlflow_run_id"]
    parent = sweep["client"].get_run(sweep["parent"].info.run_id)
    assert [o.model_id for o in parent.outputs.model_outputs] == [champion.model_id]
    assert parent.data.tags["sweeps.best_model_uri"] == f"models:/{champion.model_id}"
    assert champion.tags["sweeps.model"] == "champion"
    assert json.loads(champion.tags["mlflow.modelVersions"]) == [{"name": "digits-conv2d", "version": str(version.version)}]
    # No second copy of it, named "model", logged at the end.
    assert len(sweep["models"]) == KEEP
    model, preprocessing = load_model_and_preprocessing(sweep["uri"], "models:/digits-conv2d@champion")
    assert tuple(model.input_shape[1:]) == (8, 8, 1) and preprocessing is not None


def test_every_link_opens_the_trials_sorted_by_the_objective(sweep):
    experiment, parent = sweep["experiment"], sweep["parent"]
    link = f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey=sweep-{NAME}"
    assert f"then open http://127.0.0.1:5000/{link}" in sweep["stdout"]
    assert f"({link})" in parent.data.tags["mlflow.note.content"]
    envelope = json.loads(sweep["client"].get_experiment(experiment.experiment_id).tags[f"mlflow.sharedViewState.sweep-{NAME}"])
    state = json.loads(envelope["state"])
    assert state["orderByKey"] == "metrics.`best_val_accuracy`" and state["orderByAsc"] is False
    columns = state["selectedColumns"]
    assert columns[:4] == [
        "metrics.`best_val_accuracy`",
        "metrics.`val_accuracy`",
        "tags.`optuna.trial_number`",
        "tags.`sweeps.state`",
    ]
    searched = set(next(iter(sweep["study"].trials)).params)
    assert {f"params.`{p}`" for p in searched} <= set(columns)
    # The view's filter and order, as the UI sends them to the store: the trials, best first.
    shown = sweep["client"].search_runs(
        [experiment.experiment_id], state["searchFilter"], order_by=["metrics.best_val_accuracy DESC"]
    )
    ranked = [str(t.number) for t in _ranked(sweep["study"])]  # those without a value (infeasible) after them
    assert len(shown) == N_TRIALS and [r.data.tags["optuna.trial_number"] for r in shown][: len(ranked)] == ranked
    assert re.search(r"MLflow run \w+", sweep["stdout"])


def test_load_gives_the_models_ranked_as_mlflow_ranks_them(sweep):
    import sweeps

    frame = sweeps.load(NAME, output_dir=sweep["out"]).models
    ranked = sweep["client"].search_logged_models(
        [sweep["experiment"].experiment_id],
        filter_string=f"tags.`sweeps.name` = '{NAME}'",
        order_by=[{"field_name": "metrics.best_val_accuracy", "ascending": False}],
    )
    assert list(frame["name"]) == [m.name for m in ranked]
    assert list(frame["trial"]) == [t.number for t in _ranked(sweep["study"])[:KEEP]]
    assert list(frame["uri"]) == [f"models:/{m.model_id}" for m in ranked]
    assert frame["best_val_accuracy"].is_monotonic_decreasing
    assert {"step", "val_loss", "train_accuracy", "role"} <= set(frame.columns)
    assert frame["step"].between(1, EPOCHS).all()
