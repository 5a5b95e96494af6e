"""python -m benchmarks infeasible: the share of infeasible proposals in a `space=conv2d` sweep,
before and after the driver redraws them (sweeps.samplers.feasibility), without training anything.

The sampler is driven as the sweep's searcher drives it (ask, the space's define-by-run, the
plan), with the product's samplers (sweeps.samplers.factories.make_sampler, conf/sampler/*.yaml) and the
conv2d space and model of conf/:

- before (main up to issue 24): every proposal is a trial of the budget; an infeasible one is told
  PRUNED without a value, as the worker reported it; N proposals in all;
- after: an infeasible proposal is told PRUNED with its constraint (sweeps.samplers.feasibility.tell_infeasible)
  and redrawn; proposals go on until N feasible ones.

A feasible proposal is told a value drawn at random (seeded), the same for both: no objective
favours one region, so the share measures what the sampler learns of feasibility alone. Figures:
infeasible proposals / all proposals, per sampler and input shape, median (min-max) over seeds,
written to benchmarks/results/infeasible.txt with the commit, machine and load.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import subprocess
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"digits 8x8x1": ((8, 8, 1), 10), "28x28x1 (the issue's digits folder)": ((28, 28, 1), 10)}


def proposals(
    sampler_name: str, seed: int, trials: int, shape: tuple[int, int, int], classes: int, redraw: bool
) -> tuple[int, int]:
    """(infeasible proposals, all proposals) of one sweep of `trials` trials."""
    import optuna

    from sweeps.config.validation import load_config
    from sweeps.samplers.factories import make_sampler
    from sweeps.samplers.feasibility import rejection, tell_infeasible
    from sweeps.space import define_by_run, resolve_params

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cfg = load_config(["space=conv2d", f"sampler={sampler_name}", f"seed={seed}", "name=infeasible-bench"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction="maximize", sampler=make_sampler(cfg.sampler, cfg.seed))
    suggest = define_by_run(cfg.space, cfg.model)
    values = random.Random(seed)
    feasible = infeasible = 0
    while (feasible if redraw else feasible + infeasible) < trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = study.ask()
            suggest(trial)
        found = rejection(
            resolve_params(cfg.model, cfg.space, trial.params), shape, classes, cfg.space.max_params, cfg.space.max_flops
        )
        if found is None:
            feasible += 1
            study.tell(trial, values.uniform(0.8, 1.0))
        elif redraw:
            infeasible += 1
            tell_infeasible(study, trial, found)
        else:
            infeasible += 1
            trial.set_user_attr("outcome", "INFEASIBLE")
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return infeasible, feasible + infeasible


def run(samplers: list[str], seeds: list[int], trials: int, out: Path) -> list[str]:
    started = time.process_time()
    rows = []
    for label, (shape, classes) in SHAPES.items():
        rows.append(f"  {label}")
        for name in samplers:
            cells = []
            for redraw in (False, True):
                shares, extra = [], []
                for seed in seeds:
                    bad, total = proposals(name, seed, trials, shape, classes, redraw)
                    shares.append(bad / total)
                    extra.append(total)
                cells.append(
                    f"{'after ' if redraw else 'before'} {100 * statistics.median(shares):4.1f}% "
                    f"({100 * min(shares):.1f}-{100 * max(shares):.1f}), proposals {statistics.median(extra):.0f}"
                )
            rows.append(f"    {name:<7} " + "  |  ".join(cells))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    lines = [
        f"python -m benchmarks infeasible --trials {trials} --seeds {','.join(map(str, seeds))} --samplers {','.join(samplers)}:"
        f" commit {commit}{' (uncommitted changes)' if dirty.strip() else ''}, {platform.node()}, {os.cpu_count()} cores,"
        f" load average {load}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.process_time() - started:.0f} s CPU",
        f"  space=conv2d, {trials} trials; infeasible proposals / all proposals, median (min-max) of {len(seeds)} seeds;",
        "  before: each proposal a trial of the budget, infeasible told PRUNED; after: told with its constraint and redrawn"
        f" until {trials} feasible",
        *rows,
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "infeasible.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return lines
