"""Epochs to reach an earlier sweep's best value: a sweep warm-started from it against a cold start.

    python -m benchmarks.warm_start [--trials 6] [--epochs 3] [--seeds 1] [--limit 500]

A first sweep (seed 0, TPE with 4 random start-up trials, 1 slot, no scheduler) sets the target:
its best val_accuracy. Then, for each seed of `--seeds`, the same sweep is run twice with
`stop_at=<target>` (it ends once a trial reaches the target): cold, and with
`warm_start.from_sweep=<first>`. With one slot trials run one after another, so the epochs to
target are the epochs of the sweep's own trials in order up to the first epoch at or above the
target (Optuna's per-epoch values). Not reached: all the epochs it trained, marked '>'.
Prints a side-by-side table and writes benchmarks/results/warm_start.txt (date, commit, machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "scheduler=none",
    "sampler=tpe",
    "sampler.n_startup_trials=4",
    "resources.num_cpus=1",
    "resources.cpus_per_trial=1",
    "tracking.log_report=false",
    "tracking.log_best_model=false",
]


def _run(out: Path, name: str, *extra: str) -> None:
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", f"name={name}", f"output_dir={out}", *ARGS, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"sweep {name} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    print(f"  sweep {name}: {time.monotonic() - started:.0f} s", flush=True)


def _study(out: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}")


def epochs_to(trials: list[optuna.trial.FrozenTrial], target: float) -> tuple[int, bool]:
    """Epochs trained, trial after trial (one slot), up to the first epoch at or above `target`."""
    spent = 0
    for trial in sorted(trials, key=lambda t: t.number):
        for epoch in sorted(trial.intermediate_values):
            spent += 1
            if trial.intermediate_values[epoch] >= target:
                return spent, True
    return spent, False


def main(argv: list[str] | None = None) -> int:
    from sweeps.warmstart import own_trials

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6, help="trials of each sweep (default 6)")
    parser.add_argument("--epochs", type=int, default=3, help="max epochs per trial (default 3)")
    parser.add_argument("--limit", type=int, default=500, help="digits images used (default 500)")
    parser.add_argument("--seeds", default="1", help="seeds of the cold/warm pairs, comma-separated (default 1)")
    args = parser.parse_args(argv)
    common = [f"n_trials={args.trials}", f"max_epochs={args.epochs}", f"dataset.limit={args.limit}"]
    started = time.monotonic()
    out = Path(tempfile.mkdtemp(prefix="warm-start-bench-"))
    try:
        _run(out, "first", *common, "seed=0")
        first = own_trials(_study(out, "first").get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
        target = max(t.value for t in first)
        first_epochs, _ = epochs_to(first, target)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        lines = [
            f"Epochs to reach the first sweep's best val_accuracy {target:.4f} (digits, {args.limit} images, {args.trials} trials"
            f" x {args.epochs} epochs max, TPE with 4 start-up trials, 1 slot; the first sweep needed {first_epochs} epochs)",
            f"commit {commit}, {platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f},"
            f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"{'seed':>4}  {'cold start':>12}  {'warm start (from_sweep=first)':>30}",
        ]
        for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
            cells = []
            for label, extra in (("cold", []), ("warm", ["warm_start.from_sweep=first"])):
                name = f"{label}-{seed}"
                _run(out, name, *common, f"seed={seed}", f"stop_at={target}", *extra)
                spent, reached = epochs_to(own_trials(_study(out, name).trials), target)
                cells.append(f"{'' if reached else '>'}{spent} epochs")
            lines.append(f"{seed:>4}  {cells[0]:>12}  {cells[1]:>30}")
            print(lines[-1], flush=True)
        lines.append(
            f"('>N': not reached in the sweep's {args.trials} trials, N epochs trained; run took {time.monotonic() - started:.0f} s)"
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "warm_start.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
