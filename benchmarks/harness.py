"""The runs: every tool one after the other in one invocation (the machine is shared and noisy, so
figures are read as ratios between tools measured minutes apart, not as absolute numbers)."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from benchmarks import peers, product, report
from benchmarks.common import Budget, ToolRun, metrics

TOOLS = ("product", "kerastuner-random", "kerastuner-hyperband", "raytune-optuna", "optuna")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


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
    repeats: int = 1,
    probe: bool = True,
    keep: bool = False,
    log: TextIO = sys.stdout,
    ray_nice: bool = False,
) -> tuple[pd.DataFrame, dict[str, Path], list[ToolRun]]:
    """Run each tool on the same budget, `repeats` rounds (tools interleaved within a round), then
    write the table, CSV, PNG and a text summary to `out`."""
    work = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    started = dt.datetime.now().astimezone()
    runs: list[ToolRun] = []
    say = _printer(log)
    say(
        f"compare: {', '.join(tools)}; {budget.n_trials} trials x {budget.max_epochs} epochs, {budget.slots} slots, "
        f"digits{'' if budget.limit is None else f' (first {budget.limit})'}, seed {budget.seed}; work in {work}"
    )
    try:
        for rep in range(repeats):
            for tool in tools:
                t0 = time.time()
                say(f"  [{rep + 1}/{repeats}] {tool} ...")
                run = run_tool(tool, budget, work / f"{tool}-{rep}", probe=probe, ray_nice=ray_nice)
                runs.append(run)
                row = metrics(run, target)
                say(
                    f"      {time.time() - t0:.0f} s: {row['trials_finished']} finished, {row['trials_failed']} failed, "
                    f"best {row['best_val_accuracy']}, to target {row['time_to_target_s']} s"
                )
        df, paths = report.write(runs, target, out)
        text = summary_text(df, runs, budget, target, started, tools, repeats, ray_nice)
        paths["summary"] = out / "compare.txt"
        paths["summary"].write_text(text + "\n")
        say(text)
        say("wrote " + ", ".join(str(p) for p in paths.values()))
        return df, paths, runs
    finally:
        if keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


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


def summary_text(
    df: pd.DataFrame,
    runs: list[ToolRun],
    budget: Budget,
    target: float,
    started: dt.datetime,
    tools: Sequence[str],
    repeats: int,
    ray_nice: bool = False,
) -> str:
    lines = [
        f"benchmarks compare, {started:%Y-%m-%d %H:%M %Z}: {budget.n_trials} trials x {budget.max_epochs} epochs, "
        f"{budget.slots} slots, digits{'' if budget.limit is None else f' limit {budget.limit}'}, "
        f"target val_accuracy {target:g}" + (f", median of {repeats} rounds" if repeats > 1 else ""),
        (
            f"product at commit {product_version()}; Ray workers at nice "
            f"{'15 (Ray default)' if ray_nice else '0 (RAY_worker_niceness=0, like the other tools)'}"
        ),
        "",
        report.format_table(df),
        "",
        *report.headline(df, target),
        "",
        *report.targets(df, _tracking_share(runs)),
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
