"""The benchmark harness (benchmarks/): the peers search the product's space, and a tiny comparison
of this product and Optuna alone writes its table, CSV and PNG. Timing values are never asserted:
they depend on the machine and its neighbours."""

import math

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
    assert "dataset.image_size=[16,16]" in argv and "dataset.color_mode=rgb" in argv and "seed=3" in argv
