"""python -m benchmarks.scale_ab OLD_TREE [--slots K] [--trials N]: the scale benchmark's product run
(benchmarks/scale.py::run_product: simulated trials, sqlite) on this checkout, then on an older
one, back to back on the same machine: the driver's cost before and after a change.

OLD_TREE is a checkout of the older commit (`git worktree add /tmp/old <commit>`); this
checkout's benchmarks/ (probe included) is copied into it, so both sides are measured alike.
Writes benchmarks/results/scale_ab.txt with both commits, the machine and the date.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_ONE_SIDE = """
import sys, shutil
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from benchmarks.scale import run_product, _line
work = Path(sys.argv[2]); shutil.rmtree(work, ignore_errors=True); work.mkdir(parents=True)
print(_line(run_product(int(sys.argv[3]), int(sys.argv[4]), 3, 1.0, work / "p")).replace("(this product)", sys.argv[5]), flush=True)
"""


def _commit(tree: Path) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_ab")
    parser.add_argument("old_tree", type=Path)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    shutil.rmtree(args.old_tree / "benchmarks", ignore_errors=True)
    shutil.copytree(ROOT / "benchmarks", args.old_tree / "benchmarks", ignore=shutil.ignore_patterns("results"))
    lines = [
        f"python -m benchmarks.scale_ab OLD --slots {args.slots} --trials {args.trials} (3 epochs of 1 s, sqlite): "
        f"this checkout {_commit(ROOT)} then {_commit(args.old_tree)}, {platform.node()} ({os.cpu_count()} cores), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    ]
    for tree, label in ((ROOT, f"at {_commit(ROOT)} (after)"), (args.old_tree, f"at {_commit(args.old_tree)} (before)")):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _ONE_SIDE,
                str(tree),
                f"/tmp/scale-ab-{label[3:10]}",
                str(args.slots),
                str(args.trials),
                label,
            ],
            env={**os.environ, "PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"the run at {tree} failed:\n{done.stderr[-3000:]}")
        lines.append(done.stdout.strip())
        print(lines[-1], flush=True)
    lines.append("load average at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale_ab.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
