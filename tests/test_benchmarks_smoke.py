"""The benchmark harness (benchmarks/): the peers search the product's space, and a tiny comparison
of this product and Optuna alone writes its table, CSV and PNG. Timing values are never asserted:
they depend on the machine and its neighbours."""

import math

import numpy as np
import pytest
import yaml

from benchmarks.common import COLUMNS, ROOT, Budget, ToolRun, Trial, metrics, model_defaults


def _product_space():
    from sweeps.space import parse_value

    spec = yaml.safe_load((ROOT / "conf" / "space" / "small.yaml").read_text())
    return {key: parse_value(key, value) for key, value in spec.items()}


def test_optuna_peer_searches_the_products_small_space():
    import optuna

    from benchmarks.peers import optuna_space

    trial = optuna.create_study().ask()
    optuna_space(trial)
    assert dict(trial.distributions) == _product_space()


def test_ray_peer_searches_the_products_small_space():
    from optuna.distributions import CategoricalDistribution

    from benchmarks.peers import ray_space

    ray_space_ = ray_space()
    assert set(ray_space_) == set(_product_space())
    for key, dist in _product_space().items():
        domain = ray_space_[key]
        if isinstance(dist, CategoricalDistribution):
            assert tuple(domain.categories) == dist.choices, key
        else:
            assert (domain.lower, domain.upper, dist.log) == (dist.low, dist.high, True), key
            assert "LogUniform" in type(domain.get_sampler()).__name__, key


def test_kerastuner_peer_searches_the_products_small_space():
    kt = pytest.importorskip("keras_tuner")
    from optuna.distributions import CategoricalDistribution

    from benchmarks.peers import kerastuner_space

    hp = kt.HyperParameters()
    kerastuner_space(hp)
    declared = {p.name: p for p in hp.space}
    assert set(declared) == set(_product_space())
    for key, dist in _product_space().items():
        if isinstance(dist, CategoricalDistribution):
            assert tuple(declared[key].values) == dist.choices, key
        else:
            assert (declared[key].min_value, declared[key].max_value, declared[key].sampling) == (dist.low, dist.high, "log"), key


def test_model_defaults_are_the_products():
    defaults = model_defaults()
    assert defaults["blocks"] == 2 and defaults["batch_size"] == 64 and "kernel_size" in defaults


def test_metrics_from_a_hand_made_record():
    run = ToolRun(
        "t",
        slots=2,
        launched=100.0,
        ended=120.0,
        trials=[
            Trial("a", 101.0, 111.0, 8.0, 2, "complete", curve=[(105.0, 0.5), (110.0, 0.92)]),
            Trial("b", 102.0, 104.0, 0.0, 0, "infeasible"),
            Trial("c", 111.0, 119.0, 7.0, 1, "pruned", curve=[(118.0, 0.95)]),
        ],
    )
    row = metrics(run, target=0.9)
    assert list(row) == COLUMNS
    assert row["wall_s"] == 20.0 and row["trials_finished"] == 2 and row["trials_failed"] == 1 and row["epochs"] == 3
    assert row["best_val_accuracy"] == 0.95 and row["time_to_target_s"] == 10.0
    assert row["overhead_median_s"] == 1.5  # (10 - 8) and (8 - 7); the infeasible trial trained nothing
    assert row["utilisation"] == round(15.0 / 40.0, 3) and row["startup_s"] == 1.0
    assert math.isnan(metrics(run, target=0.99)["time_to_target_s"])


def _two_slot_run(tool: str, hit_at: float) -> ToolRun:
    """Two slots: trial a trains epochs at 105, 110, 115; trial b at 106, 112 then reaches `hit_at`."""
    return ToolRun(
        tool,
        slots=2,
        launched=100.0,
        ended=130.0,
        trials=[
            Trial("a", 101.0, 116.0, 12.0, 3, "complete", curve=[(105.0, 0.5), (110.0, 0.6), (115.0, 0.7)]),
            Trial("b", 102.0, hit_at + 1.0, 9.0, 3, "complete", curve=[(106.0, 0.4), (112.0, 0.8), (hit_at, 0.95)]),
            Trial("c", 117.0, 125.0, 5.0, 1, "pruned", curve=[(124.0, 0.3)]),
        ],
    )


@pytest.mark.parametrize(
    "hit_at, target, epochs, slot_s",
    [
        # a's three epochs (105, 110, 115) + b's three up to its hit at 118; c started before but trained no epoch by then
        (118.0, 0.9, 6, (116.0 - 101.0) + (118.0 - 102.0) + (118.0 - 117.0)),
        # b's hit at 113 comes before a's third epoch (115) and before c starts: 2 + 3 epochs
        (113.0, 0.9, 5, (113.0 - 101.0) + (113.0 - 102.0)),
        # the first epoch at the target decides (b's second, 0.8 at 112), later ones do not
        (118.0, 0.75, 4, (112.0 - 101.0) + (112.0 - 102.0)),
        (118.0, 0.99, None, None),  # never reached
    ],
)
def test_epochs_and_slot_seconds_to_target(hit_at, target, epochs, slot_s):
    from benchmarks.common import epochs_to_target, slot_seconds_to_target

    run = _two_slot_run("t", hit_at)
    assert epochs_to_target(run, target) == epochs
    got = slot_seconds_to_target(run, target)
    assert got == (None if slot_s is None else pytest.approx(slot_s))
    row = metrics(run, target)
    assert math.isnan(row["epochs_to_target"]) if epochs is None else row["epochs_to_target"] == epochs


@pytest.mark.parametrize(
    "values, expected",
    [
        ([3, 1, 2], 2),
        ([4, 1, 3, 2], 2.5),
        ([1, float("nan"), 2], 2),  # a miss counts as longer than every hit: not dropped
        ([1, float("nan"), float("nan")], math.inf),  # the median seed missed
        ([None, 5.0], math.inf),
        ([], None),
    ],
)
def test_censored_median(values, expected):
    from benchmarks.report import censored_median

    got = censored_median(values)
    assert math.isnan(got) if expected is None else got == expected


def _sequential(tool: str, misses: int | None) -> ToolRun:
    """One slot, one epoch a second from 101: `misses` epochs below 0.9, then one at 0.95
    (None: never). Epochs to target misses + 1; slot-seconds misses + 0.5."""
    accs = [0.5] * (misses if misses is not None else 4) + ([0.95] if misses is not None else [])
    curve = [(101.0 + i, a) for i, a in enumerate(accs)]
    return ToolRun(tool, 1, 100.0, 110.0, [Trial("a", 100.5, 101.5 + len(accs), 1.0, len(accs), "complete", curve=curve)])


@pytest.mark.parametrize(
    "product, verdicts, words",
    [
        (3, ("MET", "MET"), ["epochs to target 4 <= half of the best peer's median (peer2 8 -> <= 4): 0.50x", "(0.47x)"]),
        (5, ("MISSED", "MET"), ["by 2 epochs (0.75x the best peer's, the target is 0.5x)"]),
        (8, ("MISSED", "MISSED"), ["by 5 epochs", "not below peer2 7.5: 1.0 slot-s more (1.13x)"]),
        (None, ("MISSED", "MISSED"), ["this product's median seed did not reach the target"]),
    ],
)
def test_compute_targets_met_or_missed_and_by_how_much(product, verdicts, words):
    from benchmarks.product import LABEL
    from benchmarks.report import compute_targets

    runs = [_sequential(LABEL, product), _sequential("peer1", 9), _sequential("peer2", 7)]
    lines = compute_targets(runs, 0.9)
    assert [line.split("]")[0].strip(" [") for line in lines[1:]] == list(verdicts)
    for w in words:
        assert w in "\n".join(lines), (w, lines)


def test_compute_targets_when_no_peer_reaches_it_and_the_spread_table():
    from benchmarks.product import LABEL
    from benchmarks.report import compute_targets, to_target_rows

    runs = [_sequential(LABEL, 5), _sequential(LABEL, 1), _sequential(LABEL, None)]
    runs += [_sequential("peer", None), _sequential("peer", None), _sequential("peer", 2)]
    lines = compute_targets(runs, 0.9)
    assert lines[1].startswith("  [MET] epochs to target 6 <=") and "peer not reached" in lines[1]
    assert lines[2].startswith("  [MET] slot-seconds to target 5.5 < every peer's median: peer not reached")
    rows = to_target_rows(runs, 0.9).set_index("tool")
    assert rows.loc[LABEL, "seeds_reached"] == "2/3" and rows.loc[LABEL, "epochs_to_target"] == "6 [2-miss]"
    assert rows.loc["peer", "epochs_to_target"] == "not reached [3-miss]" and rows.loc[LABEL, "epochs_per_seed"] == "6 2 -"


@pytest.mark.slow
@pytest.mark.ray
def test_compare_product_and_optuna_writes_table_csv_png(tmp_path):
    import pandas as pd

    from benchmarks.harness import compare
    from benchmarks.product import LABEL

    budget = Budget.with_product_scheduler(n_trials=2, max_epochs=1, slots=2, limit=300)
    df, paths, runs = compare(budget, out=tmp_path, target=0.3, tools=("product", "optuna"))
    assert list(df.columns) == COLUMNS
    assert list(df["tool"]) == [LABEL, "Optuna alone (n_jobs)"]
    assert all(df["trials_finished"] + df["trials_failed"] == 2)
    for key in ("csv", "runs_csv", "png", "summary"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(pd.read_csv(paths["csv"]).columns) == COLUMNS
    text = paths["summary"].read_text()
    assert "Targets for this product" in text and "Where this product's time goes" in text
    product_run = next(r for r in runs if r.tool == LABEL)
    assert "trial_begin" in product_run.extra["breakdown"]["worker_calls"]  # the probe reached the product's workers


def test_photos_dataset_is_a_folder_the_product_and_the_peers_read_alike(tmp_path):
    from benchmarks.common import load_data
    from benchmarks.harness import DATASETS
    from benchmarks.photos import photo_regions_folder
    from benchmarks.product import command

    root = photo_regions_folder(tmp_path / "photos", rows=2, cols=2, per_class=10)
    assert sorted(p.name for p in root.iterdir()) == [f"{n}-{r}-{c}" for n in ("china", "flower") for r in (0, 1) for c in (0, 1)]
    assert all(len(list(p.glob("*.jpg"))) == 10 for p in root.iterdir())
    options = DATASETS["photos"]["options"]
    budget = Budget(dataset="folder", dataset_path=str(root), dataset_options=options, seed=3)
    data = load_data(budget)  # what every peer trains on
    assert data["input_shape"] == (16, 16, 3) and data["num_classes"] == 8
    assert len(data["x_train"]) + len(data["x_val"]) == 80 and len(data["x_val"]) == 16
    argv = command(budget, tmp_path / "out", "bench")  # what the product is told: the same folder, size and split
    assert argv[4] == "dataset=folder" and f"dataset.path={root}" in argv
    assert argv[5] == "space=small"  # the space the peers search (the product's default for a folder is auto)
    assert "dataset.image_size=[16,16]" in argv and "dataset.color_mode=rgb" in argv and "seed=3" in argv


# ----------------------------------------------------------------------------------- the article's CNN as a baseline


def test_the_article_cnn_in_plain_keras_is_the_products_article_point():
    """benchmarks' plain-Keras network and conf/model/conv2d.yaml with sweeps.autospace.ARTICLE_CNN
    are the same network: the same layers, shapes and 1,087,106 parameters on 28x28x1."""
    from benchmarks.peers import article_cnn
    from models.conv2d import build_conv2d
    from sweeps.autospace import ARTICLE_CNN
    from sweeps.space import flatten

    plain = article_cnn((28, 28, 1), 10)
    product = build_conv2d({**flatten(model_defaults()), **ARTICLE_CNN}, (28, 28, 1), 10)
    shapes = [(type(layer).__name__, tuple(layer.output.shape[1:])) for layer in plain.layers]
    assert shapes == [(type(layer).__name__, tuple(layer.output.shape[1:])) for layer in product.layers]
    assert plain.count_params() == product.count_params() == 1_087_106
    assert plain.loss.__name__ == "categorical_crossentropy" and float(plain.optimizer.learning_rate) == pytest.approx(1e-3)


def test_compare_leaves_the_cnn_out_where_it_cannot_be_built(tmp_path):
    from benchmarks.harness import fitting_tools
    from benchmarks.photos import photo_regions_folder

    tools, why = fitting_tools(Budget(limit=50), ("product", "article-cnn"))
    assert tools == ["product"] and "needs 16x16 or more, this data is 8x8x1" in why
    root = photo_regions_folder(tmp_path / "photos", rows=2, cols=2, per_class=4)
    photos = Budget(dataset="folder", dataset_path=str(root), dataset_options={"image_size": [16, 16]})
    assert fitting_tools(photos, ("product", "article-cnn")) == (["product", "article-cnn"], "")


def test_baseline_digits_are_upscaled_the_same_for_both_with_a_held_out_test_split(tmp_path):
    from benchmarks.baseline import _budget, digits_data, folder_data
    from benchmarks.common import load_data
    from benchmarks.product import command

    data = digits_data(tmp_path)
    budget = Budget(dataset=data.dataset, dataset_path=data.path, seed=1)
    loaded = load_data(budget)  # what the CNN trains on, through the product's loader
    assert loaded["input_shape"] == (16, 16, 1) and len(loaded["x_test"]) == 359
    assert len(loaded["x_train"]) + len(loaded["x_val"]) + len(loaded["x_test"]) == 1797
    assert np.bincount(loaded["y_test"]).min() >= 35  # stratified: every class held out
    assert np.array_equal(loaded["x_test"][0][::2, ::2], loaded["x_test"][0][1::2, 1::2])  # each pixel repeated 2x2
    argv = command(_budget(data, 30, 12, 2, seed=1), tmp_path / "o", "b")
    assert f"dataset.path={data.path}" in argv and "dataset=npz" in argv
    assert not any(a.startswith("space=") for a in argv)  # the product's own default space (auto), as a user runs it
    (tmp_path / "f" / "train").mkdir(parents=True)
    (tmp_path / "f" / "test").mkdir()
    assert folder_data(f"{tmp_path / 'f'}:28:grayscale").options == {"image_size": [28, 28], "color_mode": "grayscale"}
    assert folder_data(f"{tmp_path / 'f'}:32x48").options == {"image_size": [32, 48], "color_mode": "rgb"}
    with pytest.raises(SystemExit, match="needs train/ and test/"):
        folder_data(str(tmp_path))


def _rows(cnn, champion, cnn_wall=10.0, wall=70.0):
    rows = []
    for seed, (a, b) in enumerate(zip(cnn, champion)):
        rows.append({"dataset": "d", "seed": seed, "tool": "article-cnn", "trials": 1, "test_accuracy": a,
                     "best_val_accuracy": a, "trial_epochs": 6, "wall_s": cnn_wall})  # fmt: skip
        rows.append({"dataset": "d", "seed": seed, "tool": "product 1x", "trials": 30, "test_accuracy": b,
                     "best_val_accuracy": b, "trial_epochs": 120, "wall_s": wall})  # fmt: skip
    return rows


@pytest.mark.parametrize(
    "cnn, champion, wall, verdicts, words",
    [
        ([0.95, 0.96, 0.97], [0.98, 0.97, 0.99], 70.0, ("MET", "MET"), ["+1.0 points over the target", "7.0x"]),
        ([0.95, 0.96, 0.97], [0.96, 0.965, 0.97], 90.0, ("MISSED", "MISSED"), ["short by 0.5 points", "over by 10.0 s (9.0x)"]),
    ],
)
def test_baseline_targets_say_met_or_missed_and_by_how_much(cnn, champion, wall, verdicts, words):
    from benchmarks.baseline import summary, targets

    rows = _rows(cnn, champion, wall=wall)
    lines = targets(rows)
    assert [line.split("]")[0].strip(" [") for line in lines[1:]] == list(verdicts)
    for w in words:
        assert w in "\n".join(lines), (w, lines)
    by_tool = {r["tool"]: r for r in summary(rows)}
    assert by_tool["article-cnn"]["test_accuracy"] == "0.96 [0.95-0.97]"
    assert by_tool["product 1x"]["epochs_vs_cnn"] == "20.0x" and by_tool["product 1x"]["wall_vs_cnn"] == f"{wall / 10:.1f}x"


@pytest.mark.slow
@pytest.mark.ray
def test_baseline_command_at_its_tiniest(tmp_path):
    """python -m benchmarks baseline, 1 seed, 1 budget of 2 trials, 1 epoch, digits only: the
    command runs both tools end to end and writes its figures (values not asserted)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "results"
    argv = ["--datasets", "digits", "--seeds", "1", "--budgets", "1", "--trials", "2", "--epochs", "1", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "baseline", *argv], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((out / "baseline.json").read_text())
    assert [r["tool"] for r in record["rows"]] == ["article-cnn", "product 1x"]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in record["rows"]), record["rows"]
    assert record["rows"][0]["trial_epochs"] == 1 and record["rows"][1]["trials"] == 2
    text = (out / "baseline.txt").read_text()
    assert "product at commit" in text and "load average" in text and "machine" in text
    assert "upscaled 8x8 -> 16x16" in text and "Targets at the default budget (product 1x)" in text
    assert text.count("] digits: ") == 2  # the accuracy and the wall-time target, each MET or MISSED
    assert (out / "baseline.csv").is_file()
