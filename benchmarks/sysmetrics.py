"""python -m benchmarks.sysmetrics [--trials N] [--epochs E] [--interval S] [--out DIR]

What the per-trial system metrics cost (sweeps/worker/sysmetrics.py), against the budget of 2% of trial
time. Real Keras training of the product's default Conv2D on the embedded digits, one process:

- in the worker: the sampling thread's own CPU time plus the time `take()` holds the training loop
  at each epoch's report, over the trial's wall time (the cost itself, measured directly, so the
  figure does not drown in the shared machine's noise);
- side by side: trials with the sampler and without, alternated, median epoch time of each;
- on the driver: what the extra rows cost the single MLflow writer (log_batch of one epoch's
  metrics with and without the system metrics, into a real sqlite store), per epoch.

Prints the figures side by side and writes benchmarks/results/sysmetrics.txt (dated, with commit
and machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        import subprocess

        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
        gpu = f", GPU {out.stdout.strip().splitlines()[0]}" if out.returncode == 0 and out.stdout.strip() else ""
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    return f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}){gpu}"


def _trial(data: dict[str, Any], epochs: int, sampled: bool, interval_s: float) -> dict[str, Any]:
    """One trial as trial.py trains it (fit one epoch at a time, one report per epoch)."""
    import keras

    from benchmarks.common import model_defaults
    from models.conv2d import build_conv2d
    from sweeps.worker.sysmetrics import Sampler

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    params = model_defaults()
    model = build_conv2d(params, data["input_shape"], data["num_classes"])
    sampler = Sampler(cpus=os.cpu_count() or 1, interval_s=interval_s).start() if sampled else None
    epoch_s, take_s, reports = [], 0.0, []
    began = time.perf_counter()
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            model.fit(
                data["x_train"],
                data["y_train"],
                batch_size=int(params["batch_size"]),
                epochs=epoch,
                initial_epoch=epoch - 1,
                validation_data=(data["x_val"], data["y_val"]),
                verbose=0,
            )
            epoch_s.append(time.perf_counter() - t0)
            if sampler is not None:
                t1 = time.perf_counter()
                reports.append(sampler.take())
                take_s += time.perf_counter() - t1
    finally:
        if sampler is not None:
            sampler.stop()
    return {
        "wall_s": time.perf_counter() - began,
        "epoch_s": epoch_s,
        "take_s": take_s,
        "thread_cpu_s": sampler.own_cpu_s if sampler else 0.0,
        "reports": reports,
    }


def _driver_cost(reports: list[dict[str, float]], repeats: int) -> tuple[float, float]:
    """Median seconds of one epoch's log_batch into a real sqlite store, without and with the
    system metrics (the same epoch metrics the runner logs besides them)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    epoch = {
        "train_loss": 0.5,
        "train_accuracy": 0.8,
        "val_loss": 0.6,
        "val_accuracy": 0.75,
        "best_val_accuracy": 0.75,
        "epoch_time_s": 1.2,
        "worker_rss_mb": 900.0,
    }
    system = reports[-1] if reports else {}
    with tempfile.TemporaryDirectory() as folder:
        client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
        experiment = client.create_experiment("bench", artifact_location=Path(folder).as_uri())
        times: dict[bool, list[float]] = {False: [], True: []}
        runs = {kind: client.create_run(experiment).info.run_id for kind in (False, True)}
        for step in range(repeats):
            for with_system in (False, True) if step % 2 == 0 else (True, False):  # interleaved, against drift
                values = {**epoch, **(system if with_system else {})}
                now = int(time.time() * 1000)
                batch = [Metric(k, float(v), now, step) for k, v in values.items()]
                t0 = time.perf_counter()
                client.log_batch(runs[with_system], metrics=batch, synchronous=True)
                times[with_system].append(time.perf_counter() - t0)
    return statistics.median(times[False]), statistics.median(times[True])


def _sample_cost(n: int = 2000) -> tuple[float, int]:
    """Microseconds of one sample of the sampling thread (memory, and NVML on each GPU given)."""
    from sweeps.worker.sysmetrics import Sampler

    sampler = Sampler(cpus=1, interval_s=3600)
    t0 = time.perf_counter()
    for _ in range(n):
        sampler._sample()
    cost = (time.perf_counter() - t0) / n * 1e6
    sampler.stop()
    return cost, len(sampler.gpus.handles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sysmetrics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=2, help="trials of each kind, alternated (default 2)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="the sampler's interval in seconds (default 1.0, the product's)"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N digits images (default: all 1,797)")
    parser.add_argument(
        "--writes", type=int, default=200, help="log_batch calls of each kind for the driver's cost (default 200)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    from benchmarks.common import Budget, load_data
    from benchmarks.harness import product_version

    started = dt.datetime.now(dt.UTC)
    data = load_data(Budget(limit=args.limit))
    _trial(data, 1, False, args.interval)  # warm-up: TensorFlow's first graph and kernels
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for i in range(args.trials):
        for sampled in (True, False) if i % 2 == 0 else (False, True):  # alternated, against drift
            runs[sampled].append(_trial(data, args.epochs, sampled, args.interval))
            print(
                f"  trial {len(runs[True]) + len(runs[False])}: sampler {'on ' if sampled else 'off'} "
                f"{runs[sampled][-1]['wall_s']:.2f} s",
                flush=True,
            )
    on, off = runs[True], runs[False]
    wall_on = sum(r["wall_s"] for r in on)
    thread_cpu, take = sum(r["thread_cpu_s"] for r in on), sum(r["take_s"] for r in on)
    worker_share = 100 * (thread_cpu + take) / wall_on
    epoch_on = statistics.median(e for r in on for e in r["epoch_s"])
    epoch_off = statistics.median(e for r in off for e in r["epoch_s"])
    sample_us, gpus = _sample_cost()
    write_off, write_on = _driver_cost([rep for r in on for rep in r["reports"]], args.writes)
    driver_share = 100 * (write_on - write_off) / epoch_on
    keys = sorted(on[0]["reports"][-1]) if on and on[0]["reports"] else []

    lines = [
        f"benchmarks sysmetrics, {started:%Y-%m-%d %H:%M %Z}: this product at commit {product_version()}; {_machine()}",
        f"{args.trials} trials with the sampler and {args.trials} without, alternated, {args.epochs} epochs each, default Conv2D "
        f"on digits ({len(data['x_train'])} train images), sampler interval {args.interval:g} s",
        f"metrics per epoch: {', '.join(keys)}",
        "",
        f"{'':44s}{'sampler off':>14s}{'sampler on':>14s}",
        f"{'median epoch time (s)':44s}{epoch_off:14.3f}{epoch_on:14.3f}",
        f"{'trial wall time, all trials (s)':44s}{sum(r['wall_s'] for r in off):14.2f}{wall_on:14.2f}",
        f"{'sampling thread CPU time (s)':44s}{'-':>14s}{thread_cpu:14.4f}",
        f"{'take() at the epoch reports (s)':44s}{'-':>14s}{take:14.4f}",
        f"{'driver: one epoch log_batch, sqlite (ms)':44s}{1000 * write_off:14.2f}{1000 * write_on:14.2f}",
        f"one sample (RSS + NVML of {gpus} GPU): {sample_us:.1f} us, {100 * sample_us / 1e6 / args.interval:.4f}% of trial time at one sample per {args.interval:g} s",
        "",
        f"overhead in the worker: {worker_share:.3f}% of trial time (sampling thread CPU + take(), measured directly)",
        f"overhead on the driver's writer: {driver_share:.3f}% of an epoch's time (extra log_batch time per epoch; in the background)",
        f"budget: under 2% of trial time: {'met' if worker_share < 2 and driver_share < 2 else 'NOT met'}",
        f"side by side, the median epoch time with the sampler differs by {100 * (epoch_on - epoch_off) / epoch_off:+.1f}% "
        "(this includes the machine's noise; the direct measurement above does not)",
        f"command: python -m benchmarks.sysmetrics {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sysmetrics.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
