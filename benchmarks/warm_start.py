"""Epochs to reach an earlier sweep's best value: a sweep warm-started from it against the cold start.

    python -m benchmarks.warm_start [--trials 8] [--epochs 3] [--seeds 0,1,2] [--limit 500] [--known-only]

For each seed: a cold sweep (TPE with 4 random start-up trials, 1 slot, no scheduler, `--trials`
trials) sets the target, its best val_accuracy, and the epochs it needed to reach it; then a second
sweep, same space, seed and data (the seed also splits the data: the same validation set, and it
seeds every trial: the same initial weights and batch order), is warm-started from it
(`warm_start.from_sweep`, which re-runs the earlier best first: `warm_start.rerun_best=1`) with
`stop_at=<target>` (it ends once a trial reaches the target). `--known-only` adds a third sweep with
`warm_start.rerun_best=0` (the earlier trials as known results only, TPE proposes from the first
trial). With one slot trials run one after another, so the epochs to target are the epochs of a
sweep's own trials in order up to the first epoch at or above the target (Optuna's per-epoch
values); not reached: all the epochs it trained, marked '>'. The table also gives the re-run
trial's value beside the target: equal when retraining the same config reproduces it. Epochs, not
seconds: the figure does not depend on the machine's speed or load. Prints a side-by-side table and
writes benchmarks/results/warm_start.txt (date, commit, machine, load).
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
    "space.padding=same",  # no infeasible trials: every trial trains
    "space.dilation_rate=1",
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


def rerun_value(trials: list[optuna.trial.FrozenTrial]) -> str:
    """The value of the first trial that re-ran an earlier one (RERUN_ATTR), or '-'."""
    from sweeps.driver.warmstart import RERUN_ATTR

    reruns = sorted((t for t in trials if RERUN_ATTR in t.user_attrs), key=lambda t: t.number)
    return f"{reruns[0].value:.4f}" if reruns and reruns[0].value is not None else "-"


def main(argv: list[str] | None = None) -> int:
    from sweeps.driver.warmstart import own_trials

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8, help="trials of each sweep (default 8)")
    parser.add_argument("--epochs", type=int, default=3, help="max epochs per trial (default 3)")
    parser.add_argument("--limit", type=int, default=500, help="digits images used (default 500)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the cold/warm pairs, comma-separated (default 0,1,2)")
    parser.add_argument("--known-only", action="store_true", help="also a warm sweep with warm_start.rerun_best=0")
    args = parser.parse_args(argv)
    common = [f"n_trials={args.trials}", f"max_epochs={args.epochs}", f"dataset.limit={args.limit}"]
    started = time.monotonic()
    load = os.getloadavg()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        f"Epochs to reach the cold sweep's best val_accuracy: cold start against warm_start.from_sweep=<cold> (digits,"
        f" {args.limit} images, space=small with padding=same dilation_rate=1, {args.trials} trials x {args.epochs} epochs"
        " max, TPE with 4 start-up trials, 1 slot, no scheduler)",
        f"commit {commit}, {platform.node()}, {os.cpu_count()} CPUs, load average {load:.1f},"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"{'seed':>4}  {'target':>7}  {'cold start':>11}"
        + (f"  {'known only':>11}" if args.known_only else "")
        + f"  {'warm start':>11}  {'re-run value':>12}",
    ]
    out = Path(tempfile.mkdtemp(prefix="warm-start-bench-"))
    try:
        for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
            cold = f"cold-{seed}"
            _run(out, cold, *common, f"seed={seed}")
            finished = own_trials(_study(out, cold).get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
            target = max(t.value for t in finished)
            cold_epochs, _ = epochs_to(own_trials(_study(out, cold).trials), target)
            row = f"{seed:>4}  {target:>7.4f}  {cold_epochs:>11}"
            warm = f"warm-{seed}"
            for variant, rerun in ([(f"known-{seed}", 0)] if args.known_only else []) + [(warm, 1)]:
                _run(
                    out,
                    variant,
                    *common,
                    f"seed={seed}",
                    f"stop_at={target}",
                    f"warm_start.from_sweep={cold}",
                    f"warm_start.rerun_best={rerun}",
                )
                spent, reached = epochs_to(own_trials(_study(out, variant).trials), target)
                row += f"  {('' if reached else '>') + str(spent):>11}"
            lines.append(row + f"  {rerun_value(_study(out, warm).trials):>12}")
            print(lines[-1], flush=True)
        lines.append(
            f"(epochs trained by the sweep's own trials up to the first epoch at or above the target; '>N': not reached"
            f" in {args.trials} trials; warm start: the earlier best re-run first (warm_start.rerun_best=1), its value"
            f" under 're-run value'{'; known only: warm_start.rerun_best=0' if args.known_only else ''};"
            f" load average {os.getloadavg()[0]:.1f} at the end; run took {time.monotonic() - started:.0f} s)"
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
