"""python -m benchmarks tpe-history: the product's TPE with its history bounded (sampler.history)
against Optuna's TPE reading every trial, in one run, side by side.

- Ask cost: CPU ms per ask at trial 10 ... 2,000 (median of the 5 asks up to it), in memory (the
  driver's storage, sweeps/storage/studystore.py, answers from memory: TPE's own cost is what is left),
  asked as `scale.ask_latency` asks (the small space, three intermediate values, a value per trial).
- Search quality: the best value reached after 250, 500 and 1,000 trials, median over seeds, on
  the small space (conf/space/small.yaml) with a synthetic objective that every param moves, and
  on the 6-D Hartmann function (minimum -3.32237), and on a shifted sphere over 6 floats and 2
  categoricals (minimum 0).

CPU time only: the machine is shared, wall time says more about the neighbours than about TPE.
Figures go to benchmarks/results/tpe_history.txt with commit, machine, load and date.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.scale import small_space, timed_asks

ROOT = Path(__file__).resolve().parent.parent
UNBOUNDED = 0  # the label's history: Optuna's TPESampler as it is, every trial read


def small_objective(p: dict[str, Any]) -> float:
    """Maximised; every param of the small space moves it, no noise (best 0.9567)."""
    return (
        0.95
        - 0.12 * abs(math.log10(p["learning_rate"]) - math.log10(3e-3))
        - 0.04 * abs(math.log10(p["kernel_regularizer_strength"]) + 4.0)
        - 0.05 / math.log2(p["filters"])
        + 0.01 * (p["kernel_size"] == 3)
        + 0.005 * (p["padding"] == "same")
        - 0.01 * (p["dilation_rate"] == 2)
    )


_HARTMANN_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_HARTMANN_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict[str, Any]) -> float:
    """Minimised on [0, 1]^6; global minimum -3.32237."""
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-np.sum(_HARTMANN_ALPHA * np.exp(-np.sum(_HARTMANN_A * (x - _HARTMANN_P) ** 2, axis=1))))


_SHIFT = (1.3, -2.1, 0.4, 3.2, -0.7, 2.5)
_PENALTY = {"a": 1.0, "b": 0.0, "c": 2.0, "d": 0.5}


def sphere_space() -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space: dict[str, Any] = {f"x{i}": FloatDistribution(-5.0, 5.0) for i in range(len(_SHIFT))}
    return {**space, "c0": CategoricalDistribution(list(_PENALTY)), "c1": CategoricalDistribution([8, 16, 32, 64])}


def shifted_sphere(p: dict[str, Any]) -> float:
    """Minimised; 6 floats in [-5, 5] around a shifted centre plus two categoricals; minimum 0."""
    return sum((p[f"x{i}"] - c) ** 2 for i, c in enumerate(_SHIFT)) + _PENALTY[p["c0"]] + abs(math.log2(p["c1"]) - 5)


def _sampler(history: int, seed: int) -> Any:
    """The product's TPE as conf/ sets it, with `history` (UNBOUNDED: Optuna's own TPESampler, same settings)."""
    import optuna

    from sweeps.config.validation import load_config
    from sweeps.samplers.factories import make_sampler

    settings = load_config(["sampler=tpe"]).sampler
    if history == UNBOUNDED:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.n_startup_trials, multivariate=True, group=True)
    return make_sampler(replace(settings, history=history), seed)


def ask_cpu_ms(history: int, n: int, marks: tuple[int, ...]) -> dict[int, float]:
    """CPU ms per ask at each mark (median of the 5 asks up to it), as scale.ask_latency asks."""
    import optuna

    study = optuna.create_study(sampler=_sampler(history, 0), direction="maximize")
    seen = timed_asks(study, small_space(), n, marks)
    return {m: statistics.median(c for _, c in v) for m, v in seen.items() if v}


def best_reached(
    history: int,
    seed: int,
    space: dict[str, Any],
    objective: Callable[[dict[str, Any]], float],
    direction: str,
    marks: tuple[int, ...],
) -> dict[int, float]:
    """The best value after each mark of trials, one seeded study."""
    import optuna

    study = optuna.create_study(sampler=_sampler(history, seed), direction=direction)
    found, best = {}, None
    pick = min if direction == "minimize" else max
    for i in range(1, max(marks) + 1):
        trial = study.ask(space)
        value = objective(trial.params)
        study.tell(trial, value)
        best = value if best is None else pick(best, value)
        if i in marks:
            found[i] = best
    return found


def run(histories: tuple[int, ...], compared: tuple[int, ...], n: int, seeds: int, trials: int, out: Path) -> list[str]:
    """Ask cost for each of `histories`; search quality for each of `compared` (the costly part)."""
    import optuna

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    c_start = time.process_time()
    labels = {h: "unbounded" if h == UNBOUNDED else f"history={h}" for h in {*histories, *compared}}
    ask_marks = tuple(m for m in (10, 100, 300, 1000, 2000, 5000) if m <= n)
    quality_marks = tuple(sorted({m for m in (250, 500, 1000, 2000) if m < trials} | {trials}))
    hartmann_space = {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(6)}
    problems = {
        "small space, synthetic (max, best 0.9567)": (small_space(), small_objective, "maximize"),
        "Hartmann 6-D (min, best -3.3224)": (hartmann_space, hartmann6, "minimize"),
        "shifted sphere, 6 floats + 2 categoricals (min, best 0)": (sphere_space(), shifted_sphere, "minimize"),
    }
    asks = {h: ask_cpu_ms(h, n, ask_marks) for h in histories}
    quality: dict[str, dict[int, dict[int, float]]] = {}
    for name, (space, objective, direction) in problems.items():
        quality[name] = {}
        for h in compared:
            runs = [best_reached(h, seed, space, objective, direction, quality_marks) for seed in range(seeds)]
            quality[name][h] = {m: statistics.median(r[m] for r in runs) for m in quality_marks}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    width = max(len(v) for v in labels.values())
    lines = [
        f"python -m benchmarks tpe-history --histories {','.join(map(str, histories))} --compare {','.join(map(str, compared))} "
        f"--trials {n} --seeds {seeds} "
        f"--quality-trials {trials}: commit {commit}, {platform.node()}, {os.cpu_count()} cores, load average {load}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.process_time() - c_start:.0f} s CPU in all",
        "  TPE ask, in memory, CPU ms at trial (median of the 5 asks up to it); 0 = unbounded (Optuna's TPESampler as it is)",
        *(f"    {labels[h]:<{width}}  " + "  ".join(f"#{m} {ms:5.1f}" for m, ms in asks[h].items()) for h in histories),
        f"  best value reached after N trials, median of {seeds} seeds",
    ]
    for name, rows in quality.items():
        lines.append(f"    {name}")
        lines += [f"      {labels[h]:<{width}}  " + "  ".join(f"#{m} {v:.4f}" for m, v in rows[h].items()) for h in compared]
    out.mkdir(parents=True, exist_ok=True)
    (out / "tpe_history.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return lines
