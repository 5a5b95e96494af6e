"""The runs: every tool one after the other in one invocation (the machine is shared and noisy, so
figures are read as ratios between tools measured minutes apart, not as absolute numbers)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from benchmarks import peers, product, report
from benchmarks.common import Budget, ToolRun, load_data, metrics

# The article's CNN (benchmarks/peers.py) is a baseline, one training of the network a user already has.
TOOLS = ("product", "kerastuner-random", "kerastuner-hyperband", "kerastuner-bayes", "raytune-optuna", "optuna", "article-cnn")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
_WRITING = threading.Lock()


def run_tool(tool: str, budget: Budget, workdir: Path, probe: bool = True, ray_nice: bool = False) -> ToolRun:
    if tool == "product":
        return product.run(budget, workdir, probe=probe, ray_nice=ray_nice)
    if tool not in peers.RUNNERS:
        raise ValueError(f"unknown tool {tool!r}: use one of {', '.join(TOOLS)}")
    return peers.launch(tool, budget, workdir, ray_nice=ray_nice)


def compare(
    budget: Budget,
    out: Path = DEFAULT_OUT,
    target: float = 0.9,
    tools: Sequence[str] = TOOLS,
    seeds: int = 1,
    probe: bool = True,
    keep: bool = False,
    log: TextIO = sys.stdout,
    ray_nice: bool = False,
    stem: str = "compare",
    label: str | None = None,
    pool: Executor | None = None,
) -> tuple[pd.DataFrame, dict[str, Path], list[ToolRun]]:
    """Run each tool on the same budget, one round per seed (budget.seed, +1, ...; the seed sets
    every tool's sampler and the train/validation split; within a round the tools run one after
    the other), then write the table, CSV, PNG and a text summary to `out` as `stem`.*. The
    results are rewritten after every run, so an interrupted comparison keeps what it measured.
    pool: rounds run on it (several at once on a crowded machine: wall-time figures suffer,
    epochs to target does not)."""
    work = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    started = dt.datetime.now().astimezone()
    load_before = os.getloadavg()
    say = _printer(log)
    data = label or dataset_label(budget)
    tools, left_out = fitting_tools(budget, tools)
    if left_out:
        say(f"compare: {left_out}")
    say(
        f"compare: {', '.join(tools)}; {budget.n_trials} trials x {budget.max_epochs} epochs, {budget.slots} slots, "
        f"{data}, seeds {budget.seed}..{budget.seed + seeds - 1}; work in {work}"
    )
    order = [report_tool(t) for t in tools]
    runs: list[ToolRun] = []
    failures: list[str] = []
    lock = threading.Lock()
    latest: dict[str, Any] = {}

    def write() -> None:
        with lock:
            mine = sorted(runs, key=lambda r: (r.extra["seed"], order.index(r.tool)))
            done = len({r.extra["seed"] for r in mine})
            lost = list(failures)
        with _WRITING:  # pyplot is not thread-safe
            df, paths = report.write(mine, target, out, stem)
            context = {
                "started": started,
                "load": (load_before, os.getloadavg()),
                "data": data,
                "planned": seeds,
                "failures": lost,
                "left_out": left_out,
            }
            text = summary_text(df, mine, budget, target, context, tools, done, ray_nice)
            paths["summary"] = out / f"{stem}.txt"
            paths["summary"].write_text(text + "\n")
        latest.update(df=df, paths=paths, text=text)

    def round_of(rep: int) -> None:
        seeded = dataclasses.replace(budget, seed=budget.seed + rep)
        # Each round starts with another tool: no tool always meets the machine at the same moment,
        # and rounds running at once do not all start Ray together.
        for tool in [*tools[rep % len(tools) :], *tools[: rep % len(tools)]]:
            for attempt in (1, 2):  # a crowded machine can make a tool's start-up time out: one retry
                t0 = time.time()
                say(f"  [{stem}, seed {seeded.seed}] {tool} ...")
                try:
                    run = run_tool(tool, seeded, work / f"{tool}-{rep}-{attempt}", probe=probe, ray_nice=ray_nice)
                    break
                except RuntimeError as exc:
                    say(f"      [{stem}, seed {seeded.seed}] {tool} FAILED (attempt {attempt}): {str(exc)[-1500:]}")
                    run = None
            if run is None:
                with lock:
                    failures.append(f"{tool} seed {seeded.seed}")
                continue
            run.extra["seed"] = seeded.seed
            row = metrics(run, target)
            say(
                f"      [{stem}, seed {seeded.seed}] {tool}: {time.time() - t0:.0f} s, {row['trials_finished']} finished, "
                f"{row['trials_failed']} failed, best {row['best_val_accuracy']}, to target {row['time_to_target_s']} s, "
                f"{row['epochs_to_target']} epochs, {row['slot_s_to_target']} slot-s"
            )
            with lock:
                runs.append(run)
            write()  # after every run: an interrupted comparison keeps what it measured

    try:
        if pool is None:
            for rep in range(seeds):
                round_of(rep)
        else:
            for future in [pool.submit(round_of, rep) for rep in range(seeds)]:
                future.result()
        if not runs:
            raise RuntimeError(f"no tool finished a run: {', '.join(failures)}")
        say(latest["text"])
        say("wrote " + ", ".join(str(p) for p in latest["paths"].values()))
        return latest["df"], latest["paths"], list(runs)
    finally:
        if keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def fitting_tools(budget: Budget, tools: Sequence[str]) -> tuple[list[str], str]:
    """The tools that can run on the budget's data, and why any is left out: the article's CNN needs
    inputs of 16x16 or more (two 5x5 valid convolutions and two 2x2 poolings), which the 8x8 digits
    are not (python -m benchmarks baseline upscales them, the same way for both tools)."""
    if "article-cnn" not in tools:
        return list(tools), ""
    shape = load_data(budget)["input_shape"]
    if peers.article_fits(shape):
        return list(tools), ""
    why = f"{report_tool('article-cnn')} left out: it needs 16x16 or more, this data is {'x'.join(map(str, shape))}"
    return [t for t in tools if t != "article-cnn"], why


def report_tool(tool: str) -> str:
    """The label a tool's runs carry."""
    return product.LABEL if tool == "product" else peers.LABELS[tool]


# The comparison's datasets: name -> default target (val_accuracy) and how the budget reads it.
DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"target": 0.9},
    "photos": {"target": 0.34, "options": {"image_size": [16, 16], "color_mode": "rgb"}},
}


def compare_datasets(
    budget: Budget,
    datasets: Sequence[tuple[str, float]],
    out: Path = DEFAULT_OUT,
    tools: Sequence[str] = TOOLS,
    seeds: int = 1,
    probe: bool = True,
    ray_nice: bool = False,
    log: TextIO = sys.stdout,
    jobs: int = 1,
) -> dict[str, Path]:
    """compare() on each dataset (compare-NAME.*), then every summary in one compare.txt.
    jobs > 1: that many rounds (one dataset, one seed, its tools one after the other) at once: a
    fraction of the wall time on a crowded machine, at the price of the wall-time figures; epochs
    to target does not change."""
    from benchmarks.photos import photo_regions_folder

    folders = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    todo = []
    for name, target in datasets:
        if name == "photos":
            root = photo_regions_folder(folders / "photos", rows=2, cols=2, per_class=100)
            b = dataclasses.replace(budget, dataset="folder", dataset_path=str(root), dataset_options=DATASETS[name]["options"])
            label = "photos (a folder of 800 JPEG crops of scikit-learn's two photos, 8 regions = 8 classes, read at 16x16 RGB)"
        else:
            b, label = dataclasses.replace(budget, dataset=name), name
        label += f"; {jobs} rounds (dataset x seed) at a time over {', '.join(n for n, _ in datasets)}" if jobs > 1 else ""
        todo.append((b, target, name, label))

    def one(job: tuple[Budget, float, str, str], pool: Executor | None) -> Path:
        b, target, name, label = job
        stem = f"compare-{name}"
        written = compare(b, out, target, tools, seeds, probe, log=log, ray_nice=ray_nice, stem=stem, label=label, pool=pool)
        return written[1]["summary"]

    try:
        if jobs > 1:
            per = max(1, -(-jobs // len(todo)))  # each dataset its own share: both progress together
            pools = [ThreadPoolExecutor(per) for _ in todo]
            try:
                with ThreadPoolExecutor(len(todo)) as per_dataset:
                    summaries = list(per_dataset.map(one, todo, pools))
            finally:
                for pool in pools:
                    pool.shutdown()
        else:
            summaries = [one(job, None) for job in todo]
        paths = {name: path for (_, _, name, _), path in zip(todo, summaries)}
        paths["summary"] = out / "compare.txt"
        paths["summary"].write_text(("\n" + "=" * 100 + "\n\n").join(p.read_text() for p in summaries))
        _printer(log)(f"wrote {paths['summary']}")
        return paths
    finally:
        shutil.rmtree(folders, ignore_errors=True)


def product_version() -> str:
    """The product's commit (and whether the tree differs from it): it changes quickly."""
    import subprocess

    from benchmarks.common import ROOT

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "sweeps", "models", "tracking", "conf")
    return commit + (" + uncommitted changes" if dirty else "")


def dataset_label(budget: Budget) -> str:
    name = budget.dataset if budget.dataset_path is None else f"{budget.dataset} {budget.dataset_path}"
    return name + ("" if budget.limit is None else f" (first {budget.limit})")


def machine() -> str:
    """Host, CPUs and their model: every figure is dated with it."""
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"{platform.node()}, {os.cpu_count()} CPUs{f' ({cpu})' if cpu else ''}"


def summary_text(
    df: pd.DataFrame,
    runs: list[ToolRun],
    budget: Budget,
    target: float,
    context: dict[str, Any],
    tools: Sequence[str],
    seeds: int,
    ray_nice: bool = False,
) -> str:
    started, (before, after) = context["started"], context["load"]
    nice = os.nice(0)
    lines = [
        f"benchmarks compare, {started:%Y-%m-%d %H:%M %Z}: {budget.n_trials} trials x {budget.max_epochs} epochs, "
        f"{budget.slots} slots, {context['data']}, target val_accuracy {target:g}"
        + (f", {seeds} seeds (medians over seeds)" if seeds > 1 else ""),
        *(
            [
                f"runs so far: {len(runs)} of {context['planned'] * len(tools)} planned ({context['planned']} seeds x "
                f"{len(tools)} tools; this file is rewritten after every run)"
            ]
            if len(runs) != context.get("planned", seeds) * len(tools)
            else []
        ),
        (
            f"product at commit {product_version()}; machine {machine()}; load average (1, 5, 15 min) "
            f"{' '.join(f'{v:.2f}' for v in before)} at the start, {' '.join(f'{v:.2f}' for v in after)} at the end"
        ),
        (
            f"every tool at nice {nice}; Ray workers at nice "
            f"{'15 (Ray default)' if ray_nice else f'{nice} (RAY_worker_niceness=0, like the other tools)'}"
        ),
        *(
            [
                "wall-time figures (wall, time and slot-seconds to target, overhead, utilisation) are disturbed by the "
                "machine's other work; epochs to target is the figure load cannot change"
            ]
            if nice > 0 or max(before[0], after[0]) > 0.5 * (os.cpu_count() or 1)
            else []
        ),
        *([f"runs that failed twice and are left out: {', '.join(context['failures'])}"] if context.get("failures") else []),
        *([context["left_out"]] if context.get("left_out") else []),
        "",
        report.format_table(df),
        "",
        *report.to_target_table(runs, target),
        "",
        *report.headline(df, target),
        *report.against_baseline(df),
        "",
        *report.targets(df, _tracking_share(runs)),
        "",
        *report.compute_targets(runs, target),
        "",
        "Tools:",
        *report.describe(runs),
    ]
    lines = [line for i, line in enumerate(lines) if line or (i + 1 < len(lines) and lines[i + 1])]
    for run in runs:
        if run.tool == product.LABEL and "breakdown" in run.extra:
            lines += ["", product.format_breakdown(run.extra["breakdown"])]
            break
    return "\n".join(lines)


def _tracking_share(runs: list[ToolRun]) -> float | None:
    for run in runs:
        if run.tool == product.LABEL and "breakdown" in run.extra:
            return run.extra["breakdown"]["sweep"].get("tracking_share_of_trial_time")
    return None


def scaling(
    budget: Budget,
    out: Path = DEFAULT_OUT,
    slots: Sequence[int] = (1, 2),
    probe: bool = True,
    keep: bool = False,
    log: TextIO = sys.stdout,
    ray_nice: bool = False,
) -> pd.DataFrame:
    """The same sweep of this product with 1 slot and with 2: wall time and the speed-up."""
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    say = _printer(log)
    started = dt.datetime.now().astimezone()
    rows: list[dict[str, Any]] = []
    runs: list[ToolRun] = []
    try:
        for k in slots:
            b = Budget(**{**budget.__dict__, "slots": k})
            say(f"  scaling: {b.n_trials} trials x {b.max_epochs} epochs on {k} slot(s) ...")
            run = product.run(b, work / f"slots-{k}", probe=probe, ray_nice=ray_nice)
            runs.append(run)
            row = metrics(run, 0.9)
            rows.append(
                {
                    k2: row[k2]
                    for k2 in (
                        "slots",
                        "wall_s",
                        "trials_finished",
                        "trials_failed",
                        "epochs",
                        "best_val_accuracy",
                        "overhead_median_s",
                        "utilisation",
                        "fit_s",
                        "startup_s",
                    )
                }
            )
        df = pd.DataFrame(rows)
        base = df["wall_s"].iloc[0]
        df["speedup_vs_1_slot"] = (base / df["wall_s"]).round(2)
        df["tail_s"] = [round(r.ended - max((t.end for t in r.trials), default=r.ended), 1) for r in runs]
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "scaling.csv", index=False)
        text = (
            f"benchmarks scaling, {started:%Y-%m-%d %H:%M %Z}: this product at commit {product_version()}, "
            f"{budget.n_trials} trials x {budget.max_epochs} epochs, digits{'' if budget.limit is None else f' limit {budget.limit}'}\n\n"
            + report.format_table_generic(df)
        )
        (out / "scaling.txt").write_text(text + "\n")
        say(text)
        say(f"wrote {out / 'scaling.csv'}, {out / 'scaling.txt'}")
        return df
    finally:
        if keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _printer(log: TextIO) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(text, file=log, flush=True)

    return say
