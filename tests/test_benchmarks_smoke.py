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
