"""warm_start.from_sweep: an earlier sweep's finished trials given to a new sweep as known results.

Optuna's `add_trials` puts them into the new study as COMPLETE trials (params and values), so a
model-based sampler (tpe, gp, cmaes, nsga2) starts from what the earlier sweep learned instead of
from random points. They are marked (`WARM_ATTR`) and are not this sweep's trials: `own_trials`
leaves them out of its counts, its best trial and its table.

Known results alone do not bring the new sweep back to the earlier best: TPE proposes near it but
rarely on it (measured: docs/search.md, "Warm starts"). So the earlier best `rerun_best` points
(`rerun_points`) are also evaluated first, as Optuna's `enqueue_trial` does for a known-good point
and as KerasTuner or Katib resume from their best: each is one of the new sweep's own trials (it
spends epochs; user attribute `RERUN_ATTR` names the trial it re-runs). A trial's seed is the
sweep's `seed`, so with the same seed and data a re-run trains from the same weights in the same
order: on CPU with the same cpus_per_trial (threads) it gives the earlier value again (checked);
with other threads, on a GPU (not checked) or with another seed, a value near it.

Only what the new space can hold is carried over: a parameter the new space does not search is
dropped from every trial; a trial with a value outside the new range or choices is left out. What
was dropped is said, printed and recorded. Optuna only, no Ray or MLflow.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.core.errors import ConfigError
from sweeps.space import Space

FIELD = "warm_start.from_sweep"
WARM_ATTR = "warm_start_from"  # user attr of an added trial: "<earlier sweep>#<its trial number>"
RERUN_ATTR = "warm_start_rerun"  # user attr of an own trial that re-runs an earlier one: the same label


@dataclass(frozen=True)
class WarmStart:
    source: str  # the earlier sweep's name
    trials: tuple[FrozenTrial, ...]  # ready for study.add_trials: the new space's distributions
    finished: int  # the earlier sweep's COMPLETE trials
    dropped: tuple[str, ...]  # what was left out and why, one line each
    rerun: tuple[tuple[str, dict[str, Any]], ...] = ()  # (label, params) evaluated first: rerun_points
    metric: str = "value"  # the first objective's name, for the note

    def note(self) -> str:
        text = f"{len(self.trials)} of {self.finished} finished trials of sweep {self.source} added as known results"
        if self.rerun:
            values = {t.user_attrs[WARM_ATTR]: t.values[0] for t in self.trials}
            text += "; re-run first: " + ", ".join(
                f"{label} ({self.metric} {values[label]:.4g}) {json.dumps(params, sort_keys=True)}"
                for label, params in self.rerun
            )
        return text + (f"; dropped: {'; '.join(self.dropped)}" if self.dropped else "")


def own_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials this sweep ran itself: those a warm start added are left out."""
    return [t for t in trials if WARM_ATTR not in t.user_attrs]


def _inside(dist: optuna.distributions.BaseDistribution, value: object) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def carry_over(source: str, finished: Sequence[FrozenTrial], space: Space) -> tuple[list[FrozenTrial], list[str]]:
    """The earlier sweep's COMPLETE trials as trials of `space` (pure: tested with tables), and
    what was dropped: parameters the space does not search, trials with values outside it."""
    unknown: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    carried = []
    for trial in finished:
        params, distributions, fits = {}, {}, True
        for name, value in trial.params.items():
            dist = space.searched.get(name)
            if dist is None:
                unknown[name] += 1
            elif not _inside(dist, value):
                outside[name] += 1
                fits = False
            else:
                params[name], distributions[name] = value, dist
        if fits and params:
            carried.append(
                optuna.trial.create_trial(
                    params=params,
                    distributions=distributions,
                    values=list(trial.values),
                    user_attrs={WARM_ATTR: f"{source}#{trial.number}"},
                )
            )
    dropped = [f"{name} (not searched by this sweep) from {n} trials" for name, n in sorted(unknown.items())]
    dropped += [f"{n} trials whose {name} lies outside this sweep's space" for name, n in sorted(outside.items())]
    return carried, dropped


def rerun_points(
    carried: Sequence[FrozenTrial], directions: Sequence[optuna.study.StudyDirection], count: int
) -> list[tuple[str, dict[str, Any]]]:
    """The `count` best carried trials by the first objective (the sweep's metric, what stop_at
    and the summary's best use), best first, as (label, params) to evaluate first (pure: tested with
    tables). A tie goes to the earlier trial; a point that is already chosen (two trials that the new
    space makes the same, e.g. differing only in a dropped parameter) is re-run once; a trial
    without a finite value is never chosen."""
    sign = -1.0 if directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    ranked = sorted(
        (t for t in carried if t.values and math.isfinite(t.values[0])),
        key=lambda t: (sign * t.values[0], _number(t.user_attrs[WARM_ATTR])),
    )
    chosen: list[tuple[str, dict[str, Any]]] = []
    for trial in ranked:
        if len(chosen) >= count:
            break
        if all(trial.params != params for _, params in chosen):
            chosen.append((trial.user_attrs[WARM_ATTR], dict(trial.params)))
    return chosen


def _number(label: str) -> int:
    return int(label.rpartition("#")[2])


def load_warm_start(
    source: str,
    name: str,
    storage: optuna.storages.BaseStorage,
    space: Space,
    objectives: Sequence[tuple[str, str]],
    saved_objectives: Sequence[str] | None = None,
    rerun_best: int = 1,
) -> WarmStart:
    """Read sweep `source`'s study from `storage`, carry its finished trials over and choose the
    `rerun_best` best of them to evaluate first (rerun_points); bad input
    (no such sweep, other objectives, nothing finished or nothing that fits) is one ConfigError."""
    known = optuna.study.get_all_study_names(storage)
    if source == name:
        raise ConfigError(FIELD, f"{source!r} is this sweep itself", "name an earlier sweep of the same output_dir")
    if source not in known:
        others = ", ".join(sorted(s for s in known if s != name)[:10])
        raise ConfigError(
            FIELD,
            f"no sweep named {source!r} in this output_dir's study storage",
            f"name one of: {others}"
            if others
            else "run a sweep first in the same output_dir (or the same tracking.study_storage)",
        )
    study = optuna.load_study(study_name=source, storage=storage)
    wanted = [optuna.study.StudyDirection.MAXIMIZE if d == "max" else optuna.study.StudyDirection.MINIMIZE for _, d in objectives]
    names = [m for m, _ in objectives]
    if list(study.directions) != wanted or (saved_objectives is not None and list(saved_objectives) != names):
        raise ConfigError(
            FIELD,
            f"sweep {source!r} optimised {', '.join(saved_objectives or [d.name.lower() for d in study.directions])},"
            f" this sweep {', '.join(f'{m}:{d}' for m, d in objectives)}",
            "warm-start from a sweep with the same objectives (metric and mode)",
        )
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not finished:
        raise ConfigError(FIELD, f"sweep {source!r} has no finished (COMPLETE) trials", "name a sweep that completed trials")
    carried, dropped = carry_over(source, finished, space)
    if not carried:
        raise ConfigError(
            FIELD,
            f"none of the {len(finished)} finished trials of sweep {source!r} fits this sweep's space ({'; '.join(dropped)})",
            "search at least one of its parameters over a range or choices holding its values, or drop warm_start.from_sweep",
        )
    rerun = rerun_points(carried, wanted, rerun_best)
    return WarmStart(source, tuple(carried), len(finished), tuple(dropped), tuple(rerun), objectives[0][0])
