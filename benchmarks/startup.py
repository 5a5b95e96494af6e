"""Time from the command to the first trial's first epoch: this checkout against another (before).

    python -m benchmarks.startup --old PATH [--rounds 3]
    python -m benchmarks.startup --ray-init [--rounds 5]   # ray.init alone, with and without the dashboard process

`--old`: an older tree of this repository (e.g. `mkdir /tmp/base && git archive <commit> | tar -x -C /tmp/base`).
Each round runs the same tiny sweep (`python -m sweeps run`, 1 trial, 1 epoch, 200 digits images, no
report, no model logged) once with each tree, alternating, so both sides see the same load. The
first epoch's moment is the MLflow timestamp of its val_accuracy (logged by the driver when the
result arrives); the command's is taken just before the process is spawned. Prints both sides'
rounds and medians and writes benchmarks/results/startup.txt (date, commit, machine, load).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "n_trials=1",
    "max_epochs=1",
    "dataset.limit=200",
    "scheduler=none",
    "sampler=random",
    "resources.num_cpus=2",
    "tracking.log_report=false",
    "tracking.log_best_model=false",
    "space.filters=8",
    "space.kernel_size=3",
    "space.padding=same",
    "space.dilation_rate=1",
]


def one(code: Path) -> tuple[float, float]:
    """(seconds from the command to the first epoch's record, seconds the command took)."""
    from mlflow import MlflowClient

    out = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    try:
        env = {**os.environ, "PYTHONPATH": str(code)}
        started = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "sweeps", "run", "name=startup", f"output_dir={out}", *ARGS],
            cwd=code,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        took = time.time() - started
        if done.returncode != 0:
            raise SystemExit(f"{code}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
        first = min(
            m.timestamp
            for r in runs
            if r.data.tags.get("sweeps.kind") == "trial"
            for m in client.get_metric_history(r.info.run_id, "val_accuracy")
        )
        return first / 1000 - started, took
    finally:
        shutil.rmtree(out, ignore_errors=True)


INIT = """
import contextlib, sys, time
started = time.monotonic()
import ray
from sweeps.execution.runtime import _without_api_server
with (_without_api_server() if sys.argv[1] == "skip" else contextlib.nullcontext()):
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
print(time.monotonic() - started)
ray.shutdown()
"""


def ray_init(rounds: int) -> list[str]:
    """`import ray; ray.init(...)` alone, as the runner calls it, with Ray's dashboard process and
    without it (sweeps.execution.runtime._without_api_server), alternating: the lever without the rest of a sweep."""
    times: dict[str, list[float]] = {"with the dashboard process (before)": [], "without it (after)": []}
    for _ in range(rounds):
        for label, arg in zip(times, ("keep", "skip"), strict=True):
            done = subprocess.run(
                [sys.executable, "-c", INIT, arg],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                timeout=300,
            )
            times[label].append(float(done.stdout.strip().splitlines()[-1]))
            print(f"ray.init {label}: {times[label][-1]:.1f} s", flush=True)
    return [
        f"ray.init alone, {rounds} rounds alternating: "
        + "; ".join(
            f"{label} median {statistics.median(v):.1f} s ({' '.join(f'{x:.1f}' for x in v)})" for label, v in times.items()
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, help="the tree to compare against (before)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ray-init", action="store_true", help="measure ray.init alone, with and without the dashboard process")
    args = parser.parse_args(argv)
    if args.ray_init:
        lines = ray_init(args.rounds)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
        lines.append(
            f"commit {commit.strip()}, {platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f},"
            f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        )
        print("\n".join(lines))
        (ROOT / "benchmarks" / "results" / "startup_ray_init.txt").write_text("\n".join(lines) + "\n")
        return 0
    if args.old is None:
        parser.error("--old PATH is needed (or --ray-init)")
    sides = {"before": args.old.resolve(), "after": ROOT}
    figures: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    loads = []
    for i in range(args.rounds):
        for label, code in sides.items():
            loads.append(os.getloadavg()[0])
            figures[label].append(one(code))
            print(
                f"round {i + 1} {label}: first epoch {figures[label][-1][0]:.1f} s, command {figures[label][-1][1]:.1f} s",
                flush=True,
            )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        "Command to the first trial's first epoch (python -m sweeps run, 1 trial x 1 epoch, 200 digits images), "
        f"{args.rounds} rounds alternating",
        f"after = commit {commit} (this tree), before = {args.old}; {platform.node()}, {os.cpu_count()} CPUs, "
        f"load average {min(loads):.1f}-{max(loads):.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"{'side':8} {'first epoch s (median)':>23} {'rounds':>24} {'command s (median)':>19}",
    ]
    for label, rows in figures.items():
        firsts, tooks = [r[0] for r in rows], [r[1] for r in rows]
        lines.append(
            f"{label:8} {statistics.median(firsts):>23.1f} {' '.join(f'{x:.1f}' for x in firsts):>24}"
            f" {statistics.median(tooks):>19.1f}"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "startup.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
