"""Compute lost to a `kill -9` of the sweep's driver: epochs trained twice, with and without
continuing interrupted trials.

    python -m benchmarks.kill_resume [--old PATH_TO_AN_OLDER_CHECKOUT] [--epochs 5] [--kill-at 4]

One sweep (a grid of 4 trials, one slot, no scheduler, `--epochs` each) is run; the driver is
SIGKILLed while trial filters=16 trains epoch `--kill-at` (a fault holds it there, see
sweeps/testing/faults.py stall_once), then `resume` finishes it. Every epoch a worker trained is a line
in a result.json of Ray's result folders (the first run's and the resume's); epochs redone =
epochs trained - 4 x epochs (what the sweep needed), not counting the epoch cut by the kill.
Variants: this checkout with a snapshot every epoch (checkpoint_every_s=0) and with the default
interval, and `--old` (e.g. `git worktree add /tmp/old <commit>`), which starts a new trial
instead of continuing. Prints a side-by-side table and writes benchmarks/results/kill_resume.txt.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "sampler=grid",
    "scheduler=none",
    "dataset.limit=200",
    "resources.num_cpus=2",
    "resources.cpus_per_trial=2",
    "space.filters=choice(8,16,24,32)",
    "space.learning_rate=0.02",
    "space.kernel_size=3",
    "space.padding=same",
    "space.dilation_rate=1",
    "space.kernel_regularizer_strength=0.0001",
    "tracking.log_best_model=false",
    "tracking.log_report=false",
]


def _one(code: Path, work: Path, epochs: int, kill_at: int, extra: list[str]) -> dict[str, float]:
    out = work / "outputs"
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "PYTHONUNBUFFERED": "1",
        "SWEEPS_FAULTS": f"stall_once@filters=16@{kill_at}",
        "SWEEPS_FAULTS_DIR": str(work),
        # The product turns Tune's own loggers off (its results are in MLflow); this count is from the
        # workers' side, so Tune's JSON logger is back on here: one result.json line per trained epoch.
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "0",
    }
    started = time.monotonic()
    with (work / "driver.log").open("w") as log:
        driver = subprocess.Popen(
            [sys.executable, "-m", "sweeps", "run", "name=bench", f"max_epochs={epochs}", *ARGS, *extra, f"output_dir={out}"],
            cwd=code,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    while not any(work.glob("stalled-*")):
        if driver.poll() is not None or time.monotonic() - started > 600:
            raise SystemExit(f"the sweep ended before the kill:\n{(work / 'driver.log').read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    env.pop("SWEEPS_FAULTS")
    resumed = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sweeps", "resume", "bench", f"output_dir={out}"],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"resume failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    trained = sum(len(path.read_text().splitlines()) for path in (out / "ray").glob("*/*/result.json"))
    return {"trained": trained, "redone": trained - 4 * epochs, "resume_s": time.monotonic() - resumed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, help="an older checkout to compare (it restarts interrupted trials)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--kill-at", type=int, default=4, help="the epoch of trial filters=16 during which the driver is killed")
    args = parser.parse_args(argv)
    variants = [
        ("continuing, snapshot every epoch", ROOT, ["resources.checkpoint_every_s=0"]),
        ("continuing, default interval (60 s)", ROOT, []),
    ]
    if args.old:
        variants.append((f"old: new trial instead ({args.old.name})", args.old, ["resources.checkpoint_every_s=0"]))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        f"Compute lost to kill -9 of the driver during epoch {args.kill_at} of one of 4 trials x {args.epochs} epochs (1 slot)",
        f"commit {commit}, {platform.node()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"{'variant':40} {'epochs trained':>15} {'needed':>7} {'redone':>7} {'resume s':>9}",
    ]
    for label, code, extra in variants:
        work = Path(tempfile.mkdtemp(prefix="kill-resume-"))
        try:
            figures = _one(code, work, args.epochs, args.kill_at, extra)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        lines.append(
            f"{label:40} {figures['trained']:>15.0f} {4 * args.epochs:>7} {figures['redone']:>7.0f} {figures['resume_s']:>9.1f}"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "kill_resume.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
