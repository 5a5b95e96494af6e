"""A real sweep's best model through the MLflow Model Registry: register it, resolve its alias,
predict with it from an .npz, and list the dataset versions the sweep used."""

import numpy as np
import pytest
from mlflow import MlflowClient

from tests.conftest import main_in_process

pytestmark = [pytest.mark.slow, pytest.mark.ray]

NAME = "reg"
N_TRIALS = 2
MODEL = "digits-cnn"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("registry") / "outputs"
    result = run_cli(
        "run",
        f"name={NAME}",
        f"n_trials={N_TRIALS}",
        "max_epochs=1",
        "dataset.limit=200",
        "scheduler=none",
        "resources.num_cpus=2",
        f"output_dir={out}",
        cwd=out.parent,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("sweeps")
    parent = next(r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("sweeps.kind") == "sweep")
    return uri, client, parent


@pytest.fixture(scope="module")
def registered(sweep):
    from tracking import register_best_model

    uri, client, parent = sweep
    model_uri = parent.data.tags["sweeps.best_model_uri"]
    assert model_uri.startswith("models:/m-"), model_uri  # an MLflow 3 logged model
    version = register_best_model(uri, model_uri, MODEL, tags={"sweeps.name": NAME})
    return version, model_uri


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """MLflow's global tracking and registry URIs point at another store: nothing may use them."""
    import mlflow.tracking._tracking_service.utils as tracking_utils

    other = tmp_path / "elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{other}")
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)  # so the variable above is what MLflow reads
    return other


def test_best_model_is_registered_with_the_champion_alias(sweep, registered):
    from tracking import register_best_model

    uri, client, parent = sweep
    version, model_uri = registered
    assert version == "1"
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == version and champion.status == "READY"
    assert champion.run_id == parent.data.tags["sweeps.best_run_id"]
    assert champion.tags["sweeps.name"] == NAME
    logged = client.get_logged_model(model_uri.removeprefix("models:/"))
    assert champion.source == logged.artifact_location  # the files, not a models:/ indirection
    assert f'"version": "{version}"' in logged.tags["mlflow.modelVersions"]
    # Registering again adds a version and moves the alias to it.
    assert register_best_model(uri, model_uri, MODEL, alias="champion") == "2"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    client.set_registered_model_alias(MODEL, "champion", version)


def test_predict_prints_one_line_per_image(sweep, registered, tmp_path, elsewhere, capsys):
    from sweeps.data.datasets import load_dataset

    uri, _, _ = sweep
    images = load_dataset("digits", limit=200).x_val[:7, ..., 0]  # (N, H, W): the channel axis is added
    npz = tmp_path / "images.npz"
    np.savez(npz, x_test=images)
    code, out, err = main_in_process(
        capsys, "predict", "--model", f"models:/{MODEL}@champion", "--input", str(npz), f"tracking.uri={uri}"
    )
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(images)
    for i, line in enumerate(lines):
        index, cls, prob = line.split("\t")
        assert int(index) == i and 0 <= int(cls) <= 9 and 0.0 < float(prob) <= 1.0
    assert err == ""
    assert not elsewhere.exists()


def test_predict_refuses_bad_input_before_loading_a_model(sweep, tmp_path, capsys):

    uri, _, _ = sweep
    npz = tmp_path / "labels.npz"
    np.savez(npz, y=np.arange(3))
    model = ("--model", f"models:/{MODEL}@champion", f"tracking.uri={uri}")
    code, _, err = main_in_process(capsys, "predict", *model, "--input", str(npz))
    assert code == 2
    err = err.strip()
    assert err.startswith("error: input: ") and "Fix: " in err and len(err.splitlines()) == 1
    np.savez(npz, x=np.zeros((2, 28, 28), np.uint8))  # MNIST-sized images for an 8x8 model
    code, _, err = main_in_process(capsys, "predict", *model, "--input", str(npz))
    assert code == 2
    err = err.strip()
    assert err.startswith("error: input x: images are 28x28x1") and "8x8x1" in err
    code, _, err = main_in_process(
        capsys,
        "predict",
        "--model",
        "models:/no-such-model@champion",
        "--input",
        str(tmp_path / "missing.npz"),
        f"tracking.uri={uri}",
    )
    assert code == 2
    assert err.startswith("error: input: ")


def test_datasets_lists_the_sweeps_digest(sweep, elsewhere, capsys):
    from tracking import dataset_inputs

    uri, _, parent = sweep
    digest = parent.data.tags["dataset.digest"]
    rows = dataset_inputs(uri, "sweeps")
    assert [(r["digest"], r["sweeps"], r["shape"], r["num_classes"]) for r in rows] == [(digest, [NAME], "8x8x1", "10")]
    assert rows[0]["runs"] == 1 + N_TRIALS and rows[0]["source"] == "sklearn.datasets.load_digits"
    code, out, _ = main_in_process(capsys, "datasets", f"tracking.uri={uri}", "tracking.experiment=sweeps")
    assert code == 0
    row = next(line for line in out.splitlines() if digest in line)
    assert row.split()[0] == "digits" and row.rstrip().endswith(NAME)
    assert not elsewhere.exists()


def test_the_sweeps_own_champion_resolves_loads_and_predicts(sweep, tmp_path, elsewhere, capsys):
    """Not a name the test registers: the one the sweep registered itself (tracking.registered_model,
    `${dataset.name}-conv2d`), which must be the sweep's best model, with its training preprocessing."""
    from sweeps.data.datasets import load_dataset
    from tracking import load_model_and_preprocessing, resolve_model_uri

    uri, client, parent = sweep
    own = "models:/digits-conv2d@champion"
    assert parent.data.tags["sweeps.registered_model"].startswith(own)
    source = resolve_model_uri(uri, own)
    assert source.run_id == parent.data.tags["sweeps.best_run_id"]
    best_model = client.get_logged_model(parent.data.tags["sweeps.best_model_uri"].removeprefix("models:/"))
    assert source.location == best_model.artifact_location  # the files of the sweep's best model
    model, preprocessing = load_model_and_preprocessing(uri, own)
    assert preprocessing == {"divide_by": 1.0, "dtype": "float32", "layout": "NHWC"}  # digits: scaled by the loader
    data = load_dataset("digits", val_fraction=0.2, limit=200, seed=0)  # the sweep's own validation split
    npz = tmp_path / "val.npz"
    np.savez(npz, x=data.x_val[..., 0])
    code, out, _ = main_in_process(capsys, "predict", "--model", own, "--input", str(npz), f"tracking.uri={uri}")
    assert code == 0
    predicted = np.array([int(line.split("\t")[1]) for line in out.splitlines()])
    assert (predicted == model.predict(data.x_val, verbose=0).argmax(axis=1)).all()
    # The champion scores on the validation split exactly what its trial recorded as its best epoch.
    best = max(client.get_run(parent.data.tags["sweeps.best_run_id"]).data.metrics[k] for k in ("best_val_accuracy",))
    assert float((predicted == data.y_val).mean()) == pytest.approx(best, abs=1e-6)
    assert not elsewhere.exists()
