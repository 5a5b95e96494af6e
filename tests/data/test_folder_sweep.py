"""Real sweeps on image folders (digits as PNG, photo crops as JPEG), in memory and streamed,
asserted through MlflowClient: the manifest digest is every run's dataset input, the held-out test
score is on the sweep's run and the registered version, a streamed folder reaches the in-memory
accuracy with each file decoded once per node, predict prints class names, and a changed folder
is refused on resume, naming the file."""

import json

import pytest
from mlflow import MlflowClient
from PIL import Image

from tests.image_folders import digit_folder, photo_folder

pytestmark = [pytest.mark.slow, pytest.mark.ray]

# One fixed, good model (no search): the in-memory and streamed sweeps train the same network.
FIXED = [
    "space=small",
    "space.filters=16",
    "space.kernel_size=3",
    "space.padding=same",
    "space.dilation_rate=1",
    "space.learning_rate=0.005",
    "space.kernel_regularizer_strength=0.0001",
]
COMMON = ["max_epochs=4", "resources.num_cpus=2", "scheduler=none", "tracking.log_report=false", "seed=1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.conftest import run_cli

    base = tmp_path_factory.mktemp("folders")
    digits = digit_folder(base / "digits", limit=700, test_every=5)
    photos = photo_folder(base / "photos", per_class=30, test_per_class=8)
    out = base / "outputs"
    runs = {
        "mem": ["n_trials=1", f"dataset.path={digits}", "dataset.image_size=[8,8]", "dataset.color_mode=grayscale", *FIXED],
        "stream": [
            "n_trials=2",
            f"dataset.path={digits}",
            "dataset.image_size=[8,8]",
            "dataset.color_mode=grayscale",
            "dataset.memory_limit_mb=0.01",
            f"dataset.cache_dir={base / 'node-cache'}",
            *FIXED,
        ],
        "photos": ["n_trials=1", f"dataset.path={photos}", "dataset.image_size=[24,24]", *FIXED],
    }
    printed = {}
    for name, overrides in runs.items():
        result = run_cli("run", f"name={name}", "dataset=folder", *overrides, *COMMON, f"output_dir={out}", cwd=base)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        printed[name] = result.stdout
    return {
        "base": base,
        "digits": digits,
        "photos": photos,
        "out": out,
        "printed": printed,
        "client": MlflowClient(f"sqlite:///{out / 'mlflow.db'}"),
    }


def _sweep(world, name):
    client = world["client"]
    exp = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`sweeps.name` = '{name}'")
    parent = runs[0]
    trials = client.search_runs([exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return parent, trials


@pytest.mark.parametrize("name", ["mem", "stream", "photos"])
def test_every_run_names_the_manifest_digest_and_the_sweep_holds_a_test_score(world, name):
    client = world["client"]
    parent, trials = _sweep(world, name)
    state = json.loads((world["out"] / "sweeps" / name / "sweep.json").read_text())
    manifest = json.loads((world["out"] / "datasets" / "manifests" / f"{state['dataset_digest']}.json").read_text())
    local = client.download_artifacts(parent.info.run_id, "dataset/manifest.json", str(world["base"] / f"dl-{name}"))
    logged = json.loads(open(local).read())
    assert logged["digest"] == manifest["digest"] == state["dataset_digest"] == parent.data.tags["dataset.digest"]
    assert [d.dataset.digest for d in parent.inputs.dataset_inputs] == [manifest["digest"]]
    assert trials and all([d.dataset.digest for d in t.inputs.dataset_inputs] == [manifest["digest"]] for t in trials)
    assert len(logged["files"]) == int(parent.data.tags["dataset.files"])
    # the held-out score: metrics, per class, the plot, and the registered version's tags
    metrics = parent.data.metrics
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0
    classes = json.loads(parent.data.tags["dataset.class_names"])
    assert metrics["test_size"] == sum(1 for f in logged["files"] if f[0] == "test")
    assert sum(k.startswith("test_accuracy.") for k in metrics) == len(classes)
    listed = {a.path for a in client.list_artifacts(parent.info.run_id, "test")}
    assert {"test/confusion_matrix.png", "test/test_score.json"} <= listed
    version = parent.data.tags["sweeps.registered_model"].split("version ")[1].rstrip(")")
    tags = client.get_model_version("folder-conv2d", version).tags
    # the registered model's own score: the refit's (refit=true, in memory and streamed alike)
    registered_score = metrics["refit_test_accuracy"]
    assert float(tags["test_accuracy"]) == pytest.approx(registered_score, abs=1e-6)
    assert "Test accuracy of the best model" in world["printed"][name]


def test_streamed_folder_decodes_each_file_once_and_matches_in_memory_accuracy(world):
    mem, _ = _sweep(world, "mem")
    stream, trials = _sweep(world, "stream")
    assert stream.data.tags.get("dataset.streamed") == "true" and "dataset.streamed" not in mem.data.tags
    decoded = [t.data.metrics.get("files_decoded", 0) for t in trials]
    # once on this node, by one trial; the 140 test images never reach a trial (scored in the driver)
    assert int(stream.data.tags["dataset.files"]) == 700 and stream.data.tags["dataset.test_size"] == "140"
    assert sorted(decoded) == [0, 560]
    # the same network on the same pixels: the same accuracy within the noise of shuffling
    best_mem, best_stream = mem.data.metrics["best_val_accuracy"], stream.data.metrics["best_val_accuracy"]
    assert best_mem > 0.6 and abs(best_mem - best_stream) < 0.1, (best_mem, best_stream)
    assert abs(mem.data.metrics["test_accuracy"] - stream.data.metrics["test_accuracy"]) < 0.1


def test_a_streamed_folder_is_refit_on_train_and_validation_as_one_in_memory_is(world):
    mem, stream = _sweep(world, "mem")[0], _sweep(world, "stream")[0]
    for parent in (mem, stream):  # 700 files: 140 test, 560 train + validation
        assert "train + validation (560 images)" in parent.data.tags["sweeps.refit"], parent.data.tags["sweeps.refit"]
        assert parent.data.metrics["refit_epochs"] >= 1
    # the same network refit on the same pixels, read from the node's cache or from memory
    assert abs(mem.data.metrics["refit_test_accuracy"] - stream.data.metrics["refit_test_accuracy"]) < 0.1


def test_predict_prints_class_names_of_a_folder_model(world):
    from tests.conftest import run_cli

    result = run_cli(
        "predict",
        "--model",
        "models:/folder-conv2d@champion",
        "--input",
        str(world["photos"] / "test" / "花"),
        f"output_dir={world['out']}",
        cwd=world["base"],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert len(lines) == 8 and all(label in ("china", "花") for _, label, _ in lines)


def test_resume_refuses_a_changed_folder_naming_the_file_and_diff_names_it(world):
    from sweeps.data.datasets import load_dataset
    from sweeps.data.folders import save_manifest
    from tests.conftest import run_cli

    target = world["digits"] / "train" / "3" / "d0003.png"
    Image.new("L", (8, 8), 255).save(target)
    result = run_cli("resume", "mem", f"output_dir={world['out']}", cwd=world["base"])
    assert result.returncode == 2
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "the data changed" in err[0] and "train/3/d0003.png" in err[0], err
    # the new version, as a sweep would record it, against the sweep's own
    changed = load_dataset(
        "folder", str(world["digits"]), options={"image_size": [8, 8], "color_mode": "grayscale"}, output_dir=world["out"]
    )
    save_manifest(world["out"], changed.manifest)
    result = run_cli("datasets", "diff", "mem", changed.digest[:12], f"output_dir={world['out']}", cwd=world["base"])
    assert result.returncode == 0, result.stderr
    assert "1 changed" in result.stdout and "changed train/3/d0003.png" in result.stdout
    same = run_cli("datasets", "diff", "mem", "stream", f"output_dir={world['out']}", cwd=world["base"])
    assert "0 added, 0 removed, 0 changed" in same.stdout
    # without the outputs folder's copies (a sweep run on another machine): the manifests the runs logged
    kept = world["out"] / "datasets" / "manifests"
    kept.rename(kept.with_name("moved"))
    try:
        other = run_cli("datasets", "diff", "mem", "photos", f"output_dir={world['out']}", cwd=world["base"])
    finally:
        kept.with_name("moved").rename(kept)
    assert other.returncode == 0 and other.stderr.strip() == "", other.stderr
    assert "0 changed" in other.stdout and "added   test/花/" in other.stdout and "removed train/9/" in other.stdout


def test_a_node_that_cannot_see_the_folder_fails_before_any_trial(tmp_path):
    import ray

    from sweeps.core.errors import ConfigError
    from sweeps.execution import runtime as runner

    seen = tmp_path / "seen.png"
    Image.new("L", (4, 4)).save(seen)
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        runner.check_nodes_see([str(seen)], str(tmp_path))  # every node sees it: no error
        with pytest.raises(
            ConfigError,
            match=r"dataset.path: node .* cannot see /nowhere/x.png .*Fix: put the folder on storage every node mounts",
        ):
            runner.check_nodes_see(["/nowhere/x.png"], "/nowhere")
    finally:
        runner.shutdown()
