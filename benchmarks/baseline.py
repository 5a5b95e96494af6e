"""python -m benchmarks baseline: the product's champion against the article's CNN, side by side.

The network the product's source article writes out (benchmarks/peers.py `article_cnn`: Conv2D(32,
5x5) -> MaxPool 2 -> Conv2D(64, 5x5) -> MaxPool 2 -> Flatten -> Dense(1000) -> softmax, Adam 1e-3,
batch 128, plain Keras) is the model a user already has. Per dataset and seed it is trained once,
for the product's max_epochs, on the train split the product trains on (the product's loader and
seeded split: benchmarks/common.py `load_data`), and scored once on the same held-out test split as
the product's champion. The product runs as a user runs it (`python -m sweeps run`, its defaults:
space, sampler, scheduler) at its default budget (conf/config.yaml n_trials, with the trial count as
the budget: time_budget_s=null) and at 2x and 4x it.

Datasets: the embedded digits with a held-out test split (a fixed stratified 20%), upscaled from 8x8
to 16x16 by repeating each pixel 2x2 (the article's CNN needs 16x16 or more: two 5x5 valid
convolutions and two 2x2 poolings), the same arrays for both tools (an .npz, `dataset=npz`); the
photo regions of `python -m benchmarks compare` (8 classes, 16x16 RGB) with a test folder cut from
other crops; and any class folder given as --folder PATH[:HxW[:grayscale]] with PATH/train and
PATH/test.

Figures (medians over seeds, [min-max]): test accuracy; compute as trial-epochs and wall time
against the CNN's one training. Targets per dataset, at the default budget: the champion's median
test accuracy >= the CNN's + 1 point, in at most 8x its wall time; a miss says by how much.
Writes baseline.txt, baseline.csv and baseline.json under --out, dated with the commit, the machine
and the load average, after every run (an interrupted measurement keeps what it measured).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml

from benchmarks import peers, product
from benchmarks.common import CONF, Budget

WIN_POINTS = 1.0  # the champion's median test accuracy beats the CNN's by at least this (points)
WALL_TIMES = 8.0  # ... in at most this many times the CNN's wall time
BUDGETS = (1, 2, 4)
CNN = "article-cnn"
WHY = (
    "issue 24: a sweep exists to find a better model than the one its user already has, on held-out data, "
    "at a cost a user accepts (at most 8x one training of that model)"
)


def product_defaults() -> tuple[int, int]:
    """n_trials and max_epochs of the product's default sweep (conf/config.yaml)."""
    conf = yaml.safe_load((CONF / "config.yaml").read_text())
    return int(conf["n_trials"]), int(conf["max_epochs"])


@dataclass(frozen=True)
class Data:
    """One dataset of the measurement, as the product is told it (dataset=..., path, options)."""

    name: str
    label: str
    dataset: str
    path: str
    options: dict[str, Any] | None = None


def digits_data(root: Path, upscale: int = 2, test_share: float = 0.2) -> Data:
    """The 1,797 digits as an .npz: a fixed stratified test split (seed 0), every image upscaled
    from 8x8 to (8 upscale)^2 by repeating each pixel upscale x upscale (nearest neighbour)."""
    from sweeps.data.datasets import _digits_arrays

    images, target = _digits_arrays()
    pixels = np.kron(images / 16.0, np.ones((upscale, upscale))).astype(np.float32)  # (N, 16, 16) in [0, 1]
    rng = np.random.default_rng(0)
    test = np.zeros(len(target), bool)
    for label in np.unique(target):
        members = rng.permutation(np.flatnonzero(target == label))
        test[members[: int(round(len(members) * test_share))]] = True
    root.mkdir(parents=True, exist_ok=True)
    path = root / "digits16.npz"
    np.savez(path, x_train=pixels[~test], y_train=target[~test], x_test=pixels[test], y_test=target[test])
    side = 8 * upscale
    label = (
        f"digits ({(~test).sum()} train / {test.sum()} held-out test images, 10 classes, upscaled 8x8 -> {side}x{side} "
        f"by repeating each pixel {upscale}x{upscale}, the same arrays for both tools)"
    )
    return Data("digits", label, "npz", str(path))


def photos_data(root: Path) -> Data:
    """The compare benchmark's photo regions (8 classes, read at 16x16 RGB): a train folder, and a
    test folder of other crops of the same regions."""
    from benchmarks.harness import DATASETS
    from benchmarks.photos import photo_regions_folder

    photo_regions_folder(root / "train", rows=2, cols=2, per_class=100, seed=0)
    photo_regions_folder(root / "test", rows=2, cols=2, per_class=25, seed=1)
    label = "photos (800 train / 200 held-out test JPEG crops of scikit-learn's two photos, 8 regions = 8 classes, 16x16 RGB)"
    return Data("photos", label, "folder", str(root), dict(DATASETS["photos"]["options"]))


def folder_data(spec: str) -> Data:
    """--folder PATH[:HxW[:grayscale|rgb]] (size N is NxN; default 64x64 rgb): PATH/train and PATH/test."""
    parts = spec.split(":")
    mode = parts.pop() if len(parts) > 1 and parts[-1] in ("rgb", "grayscale") else "rgb"
    size = parts.pop() if len(parts) > 1 and re.fullmatch(r"\d+(x\d+)?", parts[-1]) else "64"
    path = Path(":".join(parts)).expanduser().resolve()
    if not (path / "train").is_dir() or not (path / "test").is_dir():
        raise SystemExit(f"--folder {spec}: {path} needs train/ and test/ class folders (the test split is scored once)")
    height, _, width = size.partition("x")
    image_size = [int(height), int(width or height)]
    label = f"{path.name} (the folder {path}, read at {image_size[0]}x{image_size[1]} {mode})"
    return Data(path.name, label, "folder", str(path), {"image_size": image_size, "color_mode": mode})


MAKERS: dict[str, Callable[[Path], Data]] = {"digits": digits_data, "photos": photos_data}


# ----------------------------------------------------------------------------------- measuring


def _budget(data: Data, n_trials: int, max_epochs: int, slots: int, seed: int) -> Budget:
    return Budget.with_product_scheduler(
        n_trials=n_trials,
        max_epochs=max_epochs,
        slots=slots,
        seed=seed,
        dataset=data.dataset,
        dataset_path=data.path,
        dataset_options=data.options,
        space=None,  # the product as a user runs it: its default space for the data (auto)
    )


def _row(data: Data, seed: int, tool: str, n_trials: int, run: Any) -> dict[str, Any]:
    accuracies = [acc for t in run.trials for _, acc in t.curve]
    test = run.extra.get("test_accuracy")
    return {
        "dataset": data.name,
        "seed": seed,
        "tool": tool,
        "trials": n_trials,
        "test_accuracy": math.nan if test is None else round(float(test), 4),
        "best_val_accuracy": round(max(accuracies), 4) if accuracies else math.nan,
        "trial_epochs": sum(t.epochs for t in run.trials),
        "wall_s": round(run.ended - run.launched, 1),
    }


def measure(
    datasets: Sequence[Data],
    seeds: int = 3,
    budgets: Sequence[int] = BUDGETS,
    n_trials: int | None = None,
    max_epochs: int | None = None,
    slots: int = 2,
    out: Path | None = None,
    log: TextIO = sys.stdout,
    keep: bool = False,
) -> dict[str, Path]:
    """Every dataset x seed: the CNN once, the product at each budget (budget x n_trials trials), in
    an order that turns per seed; the results rewritten after every run."""
    from benchmarks.harness import DEFAULT_OUT

    out = out or DEFAULT_OUT
    default_trials, default_epochs = product_defaults()
    n_trials, max_epochs = n_trials or default_trials, max_epochs or default_epochs
    context = {
        "started": dt.datetime.now().astimezone(),
        "load": os.getloadavg(),
        "n_trials": n_trials,
        "max_epochs": max_epochs,
        "slots": slots,
        "budgets": list(budgets),
        "seeds": seeds,
        "datasets": {d.name: d.label for d in datasets},
    }
    work = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    rows: list[dict[str, Any]] = []
    paths: dict[str, Path] = {}

    def say(text: str) -> None:
        print(text, file=log, flush=True)

    say(
        f"baseline: {', '.join(d.name for d in datasets)}; {seeds} seed(s); the product at {', '.join(f'{b}x' for b in budgets)} "
        f"{n_trials} trials x {max_epochs} epochs on {slots} slots; the article's CNN {max_epochs} epoch(s); work in {work}"
    )
    try:
        for data in datasets:
            for seed in range(seeds):
                jobs: list[tuple[str, int]] = [(CNN, 1), *((f"product {b}x", n_trials * b) for b in budgets)]
                jobs = jobs[seed % len(jobs) :] + jobs[: seed % len(jobs)]
                for tool, trials in jobs:
                    budget = _budget(data, trials, max_epochs, slots, seed)
                    where = work / f"{data.name}-{seed}-{tool.replace(' ', '-')}"
                    say(f"  [{data.name}, seed {seed}] {tool} ...")
                    if tool == CNN:
                        run = peers.launch(CNN, budget, where)
                    else:
                        run = product.run(budget, where, probe=False)
                    rows.append(_row(data, seed, tool, trials if tool != CNN else 1, run))
                    say(f"      {rows[-1]}")
                    paths = write(rows, context, out)
        say(paths["txt"].read_text() if paths else "nothing measured")
        return paths
    finally:
        if keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------------- figures


def _median(values: Sequence[float]) -> float:
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else math.nan


def _spread(values: Sequence[float], digits: int = 4) -> str:
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "n/a"
    med = round(statistics.median(values), digits)
    return f"{med:g} [{min(values):g}-{max(values):g}]" if len(values) > 1 else f"{med:g}"


def summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset and tool, over seeds: test accuracy, trial-epochs and wall time as median
    [min-max], and their ratios to the CNN's medians."""
    out = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == name]
        cnn = [r for r in mine if r["tool"] == CNN]
        cnn_epochs, cnn_wall = _median([r["trial_epochs"] for r in cnn]), _median([r["wall_s"] for r in cnn])
        for tool in dict.fromkeys(r["tool"] for r in sorted(mine, key=lambda r: (r["tool"] != CNN, r["trials"]))):
            runs = [r for r in mine if r["tool"] == tool]
            epochs, wall = _median([r["trial_epochs"] for r in runs]), _median([r["wall_s"] for r in runs])
            out.append(
                {
                    "dataset": name,
                    "tool": tool,
                    "trials": runs[0]["trials"],
                    "seeds": len(runs),
                    "test_accuracy": _spread([r["test_accuracy"] for r in runs]),
                    "best_val_accuracy": _spread([r["best_val_accuracy"] for r in runs]),
                    "trial_epochs": _spread([r["trial_epochs"] for r in runs], 1),
                    "epochs_vs_cnn": _times(epochs, cnn_epochs),
                    "wall_s": _spread([r["wall_s"] for r in runs], 1),
                    "wall_vs_cnn": _times(wall, cnn_wall),
                }
            )
    return out


def _times(a: float, b: float) -> str:
    return "n/a" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.1f}x"


def targets(rows: Sequence[dict[str, Any]], default: str = "product 1x") -> list[str]:
    """Per dataset, at the default budget: MET or MISSED, with by how much."""
    lines = [
        f"Targets at the default budget ({default}), medians over seeds; why: {WHY}:",
    ]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        cnn = [r for r in rows if r["dataset"] == name and r["tool"] == CNN]
        mine = [r for r in rows if r["dataset"] == name and r["tool"] == default]
        if not cnn or not mine:
            lines.append(f"  [n/a] {name}: not measured yet ({'no CNN run' if not cnn else f'no {default} run'})")
            continue
        theirs, ours = _median([r["test_accuracy"] for r in cnn]), _median([r["test_accuracy"] for r in mine])
        need = theirs + WIN_POINTS / 100
        if math.isnan(ours) or math.isnan(theirs):
            lines.append(f"  [n/a] {name}: test accuracy: no held-out test split scored")
        else:
            gap = (ours - need) * 100
            verdict = "MET" if ours >= need - 1e-12 else "MISSED"
            detail = f"{gap:+.1f} points over the target" if verdict == "MET" else f"short by {-gap:.1f} points"
            lines.append(
                f"  [{verdict}] {name}: champion's test accuracy {ours:.4f} >= the CNN's {theirs:.4f} + {WIN_POINTS:g} point "
                f"= {need:.4f}: {detail} (gain over the CNN {(ours - theirs) * 100:+.1f} points)"
            )
        wall, cnn_wall = _median([r["wall_s"] for r in mine]), _median([r["wall_s"] for r in cnn])
        limit = WALL_TIMES * cnn_wall
        ok = wall <= limit
        lines.append(
            f"  [{'MET' if ok else 'MISSED'}] {name}: wall {wall:g} s <= {WALL_TIMES:g}x the CNN's {cnn_wall:g} s = {limit:g} s: "
            + (f"{wall / cnn_wall:.1f}x" if ok else f"over by {wall - limit:.1f} s ({wall / cnn_wall:.1f}x)")
        )
    return lines


def text(rows: Sequence[dict[str, Any]], context: dict[str, Any]) -> str:
    import pandas as pd

    from benchmarks.harness import machine, product_version
    from benchmarks.report import format_table_generic

    before, after = context["load"], os.getloadavg()

    lines = [
        f"benchmarks baseline, {context['started']:%Y-%m-%d %H:%M %Z}: the product's champion (python -m sweeps run, its "
        f"defaults; {', '.join(f'{b}x' for b in context['budgets'])} the default {context['n_trials']} trials x "
        f"{context['max_epochs']} epochs, {context['slots']} slots, time_budget_s=null) against the article's CNN "
        f"(plain Keras, one training of {context['max_epochs']} epochs), {context['seeds']} seed(s), test accuracy on the "
        "held-out test split",
        (
            f"product at commit {product_version()}; machine {machine()}; load average (1, 5, 15 min) "
            f"{' '.join(f'{v:.2f}' for v in before)} at the start, {' '.join(f'{v:.2f}' for v in after)} at the end"
        ),
        *(f"  {name}: {label}" for name, label in context["datasets"].items()),
        "",
        format_table_generic(pd.DataFrame(summary(rows))),
        "",
        *targets(rows),
    ]
    return "\n".join(lines)


def write(rows: Sequence[dict[str, Any]], context: dict[str, Any], out: Path) -> dict[str, Path]:
    import pandas as pd

    from benchmarks.harness import machine, product_version

    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "baseline.csv", "txt": out / "baseline.txt", "json": out / "baseline.json"}
    pd.DataFrame(rows).to_csv(paths["csv"], index=False)
    body = text(rows, context)
    paths["txt"].write_text(body + "\n")
    record = {
        **{k: v for k, v in context.items() if k != "started"},
        "started": f"{context['started']:%Y-%m-%d %H:%M %Z}",
        "load_end": os.getloadavg(),
        "commit": product_version(),
        "machine": machine(),
        "rows": list(rows),
        "summary": summary(rows),
        "targets": targets(rows),
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    paths["json"].write_text(json.dumps(record, indent=1, default=str) + "\n")
    return paths


def main(args: Any) -> int:
    """`python -m benchmarks baseline` (arguments parsed in benchmarks/__main__.py)."""
    folders = Path(tempfile.mkdtemp(prefix="bench-baseline-data-"))
    try:
        names = [n.strip() for n in args.datasets.split(",") if n.strip()] if args.datasets else list(MAKERS)
        unknown = [n for n in names if n not in MAKERS]
        if unknown:
            raise SystemExit(f"--datasets: unknown {', '.join(unknown)}; use {', '.join(MAKERS)} (and --folder PATH[:HxW])")
        datasets = [MAKERS[n](folders / n) for n in names] + [folder_data(spec) for spec in args.folder or []]
        budgets = [int(b) for b in args.budgets.split(",")]
        measure(datasets, args.seeds, budgets, args.trials, args.epochs, args.slots, args.out, keep=args.keep)
        return 0
    finally:
        shutil.rmtree(folders, ignore_errors=True)
