"""The tracker against a real MLflow sqlite store in a temp dir, asserted through MlflowClient."""

import numpy as np
from mlflow import MlflowClient

from tracking import RunStatus, SweepTracker, default_tracking_uri


def test_parent_and_nested_runs(tmp_path):
    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "artifacts")
    parent = tracker.start_sweep("s", {"a.b": 1, "long": "x" * 7000}, {"sweeps.name": "s"}, "a:\n  b: 1\n")
    tracker.log_dataset(
        parent, np.zeros((4, 8, 8, 1), np.float32), np.arange(4), "digits", "sklearn.datasets.load_digits", "d" * 32
    )
    child = tracker.start_trial("trial-000", {"filters": 16}, {"tune.trial_id": "t1"})
    for step in (1, 2, 3):
        tracker.log_metrics(child, {"val_accuracy": step / 10, "val_loss": float("nan")}, step=step)
    tracker.end_trial(child, RunStatus.FAILED, {"sweeps.state": "FAILED"}, error="Traceback...\nValueError: boom")
    tracker.end_sweep({"best": 0.3}, {}, RunStatus.FINISHED)

    client = MlflowClient(uri)
    runs = client.search_runs([tracker.experiment_id])
    assert len(runs) == 2
    c = client.get_run(child)
    assert c.data.tags["mlflow.parentRunId"] == parent and c.info.status == "FAILED"
    assert [m.value for m in client.get_metric_history(child, "val_accuracy")] == [0.1, 0.2, 0.3]
    assert client.get_metric_history(child, "val_loss") == []  # NaN is not logged
    assert [d.dataset.digest for d in c.inputs.dataset_inputs] == ["d" * 32]
    p = client.get_run(parent)
    assert p.data.params["a.b"] == "1" and p.data.params["long"].endswith("...")
    assert p.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(parent, "config")}
    assert artifacts == {"config/resolved.yaml"}
    assert {a.path for a in client.list_artifacts(child, "error")} == {"error/traceback.txt"}
    assert (tmp_path / "artifacts").is_dir()  # artifacts never land in the current folder


def test_reopening_an_experiment_keeps_its_id(tmp_path):
    uri = default_tracking_uri(tmp_path)
    first = SweepTracker(uri, "exp", tmp_path / "a").experiment_id
    assert SweepTracker(uri, "exp", tmp_path / "a").experiment_id == first


def test_a_logged_model_carries_its_signature_and_pinned_requirements(tmp_path):
    from importlib.metadata import version

    import keras
    import mlflow

    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "artifacts")
    tracker.start_sweep("s", {}, {}, "a: 1\n")
    child = tracker.start_trial("trial-000", {}, {})
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model_uri = tracker.log_keras_model(child, model)

    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info(model_uri)
    assert [(str(s.type), s.shape) for s in info.signature.inputs.inputs] == [("float32", (-1, 8, 8, 1))]
    assert [(str(s.type), s.shape) for s in info.signature.outputs.inputs] == [("float32", (-1, 10))]
    requirements = next((tmp_path / "artifacts").rglob("requirements.txt")).read_text().split()
    assert f"keras=={version('keras')}" in requirements and f"tensorflow=={version('tensorflow')}" in requirements
    assert any(r.startswith("mlflow==") for r in requirements)
    restored = mlflow.keras.load_model(model_uri)
    assert restored.predict(np.zeros((2, 8, 8, 1), np.float32), verbose=0).shape == (2, 10)
    assert MlflowClient(uri).get_run(child).info.status == "FINISHED"


def test_a_tracker_with_queued_writes_pickles_without_them(tmp_path):
    import pickle

    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "artifacts")
    parent = tracker.start_sweep("s", {"a": 1}, {}, "a: 1\n")
    tracker.log_metrics(parent, {"x": 1.0})  # queued
    copy = pickle.loads(pickle.dumps(tracker))  # what Ray Tune does with its callbacks
    assert copy.parent_run_id == parent and copy.tracking_uri == uri
    tracker.end_sweep({}, {}, RunStatus.FINISHED)
    assert [m.value for m in MlflowClient(uri).get_metric_history(parent, "x")] == [1.0]


def test_a_reopened_trial_run_gets_the_dataset_link_its_killed_driver_had_queued(tmp_path):
    """The link to the dataset is written behind the driver; a run a killed driver left without it
    gets it when `resume` reopens the run, once."""
    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "artifacts")
    parent = tracker.start_sweep("s", {}, {}, "a: 1\n")
    tracker.log_dataset(parent, np.zeros((4, 8, 8, 1), np.float32), np.arange(4), "digits", "sklearn", "d" * 32)
    client = MlflowClient(uri)
    bare = client.create_run(tracker.experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id  # as the kill left it
    linked = tracker.start_trial("trial-001", {"filters": 16}, {})
    for run_id in (bare, linked):
        tracker.reopen_trial(run_id, {"filters": 16})
    tracker.flush()
    for run_id in (bare, linked):
        assert [d.dataset.digest for d in client.get_run(run_id).inputs.dataset_inputs] == ["d" * 32], run_id


def test_a_refused_registration_is_recorded_on_the_parent_run_which_stays_as_it_was(tmp_path):
    """tracking.models.crown: the registry's RegistryError reaches the caller, and the parent run says why."""
    import pytest

    from tracking import RegistryError
    from tracking.models import REGISTRATION_ERROR_TAG, crown

    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "artifacts")
    parent = tracker.start_sweep("s", {}, {}, "a: 1\n")
    with pytest.raises(RegistryError, match="has no model at 'model'"):
        crown(tracker, f"runs:/{parent}/model", "digits-conv2d", "s")  # no model was ever logged there
    tags = tracker.run_tags(parent)
    assert "has no model at 'model'" in tags[REGISTRATION_ERROR_TAG] and "sweeps.registered_model" not in tags
    client = MlflowClient(uri, registry_uri=uri)
    assert client.get_run(parent).info.status == "RUNNING"  # the sweep ends it as it ended, not the registry
    assert client.search_registered_models() == []
    tracker.close()


def test_a_registration_that_succeeds_later_clears_the_earlier_refusal(tmp_path):
    """A resumed sweep whose champion registers this time: the parent run no longer says it was refused."""
    import mlflow
    import pytest
    from mlflow.pyfunc import PythonModel

    from tracking import RegistryError
    from tracking.models import REGISTRATION_ERROR_TAG, crown

    class Constant(PythonModel):
        def predict(self, context, model_input):
            return model_input

    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "artifacts")
    parent = tracker.start_sweep("s", {}, {}, "a: 1\n")
    with pytest.raises(RegistryError):
        crown(tracker, f"runs:/{parent}/model", "digits-conv2d", "s")  # nothing logged there yet
    assert REGISTRATION_ERROR_TAG in tracker.run_tags(parent)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=parent):
        mlflow.pyfunc.log_model(name="model", python_model=Constant(), pip_requirements=[])
    registered, version = crown(tracker, f"runs:/{parent}/model", "digits-conv2d", "s")
    tags = tracker.run_tags(parent)
    assert version == "1" and tags["sweeps.registered_model"] == registered
    assert REGISTRATION_ERROR_TAG not in tags
    tracker.close()


def test_a_tag_set_after_a_trial_ended_leaves_no_journal_file_open(tmp_path):
    """Retention tags a finished trial's run when it drops its checkpoint, after the run's end is
    queued or stored. Its journal file (the kill -9 log of queued values) used to be opened again
    for it and never closed: an open file in the driver per such trial, a thousand for a thousand."""
    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "artifacts", journal_dir=tmp_path / "journal")
    tracker.start_sweep("s", {}, {}, "a: 1\n")
    runs = [tracker.start_trial(f"trial-{i:03d}", {"filters": 16}, {}) for i in range(3)]
    for i, run_id in enumerate(runs):
        tracker.end_trial(run_id, RunStatus.FINISHED, {"sweeps.state": "COMPLETE"})
        if i == 0:
            tracker.flush()  # its end stored before the late tag: the order a busy writer gives too
        tracker.set_tags(run_id, {"sweeps.checkpoint": "deleted"})
    tracker.flush()
    assert tracker.journal is not None
    assert not set(tracker.journal._files) & set(runs)
    assert not {p.stem for p in (tmp_path / "journal").glob("*.jsonl")} & set(runs)
    client = MlflowClient(uri)
    assert all(client.get_run(r).data.tags["sweeps.checkpoint"] == "deleted" for r in runs)
