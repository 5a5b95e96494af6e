"""The scale benchmark's simulated trial (benchmarks/simulated.py) and `python -m benchmarks scale`.
Timing values are never asserted: they depend on the machine and its neighbours."""

import csv
import subprocess
import sys

import pytest

from benchmarks.simulated import curve, quality
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        ({"learning_rate": 3e-3, "filters": 32}, {"learning_rate": 1e-4, "filters": 32}),
        ({"learning_rate": 3e-3, "filters": 64}, {"learning_rate": 3e-3, "filters": 16}),
        ({"learning_rate": 3e-3, "dropout": 0.25}, {"learning_rate": 3e-3, "dropout": 0.5}),
    ],
)
def test_the_simulated_curve_depends_on_the_params(better, worse):
    assert quality(better) > quality(worse)
    assert [curve(better, e)["val_accuracy"] for e in (1, 2, 3)] == sorted(curve(better, e)["val_accuracy"] for e in (1, 2, 3))


def test_the_simulated_trial_is_unreachable_from_the_product():
    """Only the benchmark's probe swaps it in: nothing in the product names it."""
    for folder in ("sweeps", "models", "tracking", "conf"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".yaml"):
                assert "simulated" not in path.read_text() and "benchmarks" not in path.read_text(), path


@pytest.mark.slow
@pytest.mark.ray
def test_scale_benchmark_writes_its_table(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "scale",
            "--slots",
            "2",
            "--trials",
            "2,3",
            "--epochs",
            "2",
            "--epoch-s",
            "0.1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,  # benchmarks/ is not installed: run from the checkout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (tmp_path / "scale.txt").read_text()
    assert "recorded MLflow 2/2, Optuna 2/2" in table and "recorded MLflow 3/3, Optuna 3/3" in table
    assert "plain Ray Tune" in table and "driver ms/result" in table
    rows = list(csv.DictReader((tmp_path / "scale.csv").open()))
    assert [(r["tool"].split()[0], r["trials"]) for r in rows] == [
        ("sweeps", "2"),
        ("plain", "2"),
        ("sweeps", "3"),
        ("plain", "3"),
    ]
    # The driver alone (a Python process with TensorFlow's and Ray's clients loaded), not a host's whole memory.
    assert all(100 < float(r["driver_peak_rss_mb"]) < 4000 for r in rows), rows
    (growth,) = [line for line in table.splitlines() if line.startswith("K=  2 sweeps") and "per 1,000 trials" in line]
    assert "driver peak RSS" in growth and ("target < 50 MB: met" in growth or "MISSED" in growth)
