"""Bad input through the real CLI: one clear error naming the field, exit code 2, nothing written."""

import shutil

import numpy as np
import pytest


def _npz(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


CASES = [
    (["sampler=bayes"], "sampler/bayes"),
    (["n_trials=0"], "n_trials"),
    (["mode=best"], "mode"),
    (["metric=f1"], "metric"),
    (["n_trial=3"], "n_trial"),
    (["n_trials=("], "Error parsing override"),
    (["dataset=imagenet"], "dataset/imagenet"),
    (["dataset=npz"], "dataset.path"),
    (["dataset=npz", "dataset.path=/nonexistent/x.npz"], "does not exist"),
    (["space.kernel_size=int(interval(5,1))"], "space.kernel_size"),
    (["space.learning_rate=tag(log,interval(0,1))"], "space.learning_rate"),
    (["space.activation=choice(relu,relux)"], "space.activation"),
    (["output_dir=/proc/forbidden"], "output_dir"),
    (["space.filters=choice()"], "space.filters"),
    (["space.filters=[16,32]"], "space.filters"),
    (["space.kernel_initializer=choice(he_normal,he_magic)"], "space.kernel_initializer"),
    (["space.kernel_regularizer=choice(l2,l3)"], "space.kernel_regularizer"),
    (["sampler=grid"], "space.learning_rate"),
    (["objectives=[params:min]"], "objectives"),
    (["max_failure_rate=2"], "max_failure_rate"),
    (["sampler.history=10"], "sampler.history"),
    (["space.strides=2", "space.dilation_rate=2"], "no model of this space can be built"),
    (["tracking.uri=http://127.0.0.1:9"], "tracking.uri"),
    (["tracking.study_storage=http://127.0.0.1/db"], "tracking.study_storage"),
    (["tracking.study_storage=postgresql://nobody@127.0.0.1:9/none"], "tracking.study_storage"),
]


@pytest.mark.parametrize(("overrides", "named"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_exits_2_and_writes_nothing(cli, tmp_path, overrides, named):
    out = tmp_path / "out"
    if not any(o.startswith("output_dir=") for o in overrides):
        overrides = [*overrides, f"output_dir={out}"]
    result = cli("run", *overrides, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_labels_out_of_step_with_images(cli, tmp_path):
    path = _npz(tmp_path, x_train=np.zeros((10, 8, 8), np.uint8), y_train=np.arange(9))
    result = cli("run", "dataset=npz", f"dataset.path={path}", f"output_dir={tmp_path}/out", cwd=tmp_path)
    assert result.returncode == 2 and "9 labels for 10 images" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cfg_prints_the_resolved_config(cli, tmp_path):
    result = cli("run", "--cfg", "n_trials=7", cwd=tmp_path)
    assert result.returncode == 0 and "n_trials: 7" in result.stdout


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"x_train": np.array([["a"] * 8] * 4), "y_train": np.arange(4)}, "dtype"),
        ({"x_train": np.zeros((4, 8, 8)), "y_train": np.array([0, 1, -1, 2])}, "negative"),
        (
            {"x_train": np.zeros((4, 8, 8)), "y_train": np.arange(4), "x_test": np.zeros((2, 8, 8)), "y_test": np.array([0, 7])},
            "never occurs",
        ),
    ],
)
def test_bad_npz_content(cli, tmp_path, arrays, words):
    path = _npz(tmp_path, **arrays)
    result = cli("run", "dataset=npz", f"dataset.path={path}", f"output_dir={tmp_path}/out", cwd=tmp_path)
    assert result.returncode == 2 and words in result.stderr
    assert not (tmp_path / "out").exists()


def test_corrupt_npz(cli, tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    result = cli("run", "dataset=npz", f"dataset.path={path}", f"output_dir={tmp_path}/out", cwd=tmp_path)
    assert result.returncode == 2 and "not a readable .npz" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has GPUs")
def test_gpus_requested_where_none_exist(cli, tmp_path):
    result = cli("run", "resources.gpus_per_trial=1", "resources.num_cpus=1", f"output_dir={tmp_path}/out", cwd=tmp_path)
    assert result.returncode == 2
    assert "resources.gpus_per_trial" in result.stderr and "has 0" in result.stderr
    assert not (tmp_path / "out").exists()
