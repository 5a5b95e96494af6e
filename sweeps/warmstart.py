"""warm_start.from_sweep: an earlier sweep's finished trials given to a new sweep as known results.

Optuna's `add_trials` puts them into the new study as COMPLETE trials (params and values), so a
model-based sampler (tpe, gp, cmaes, nsga2) starts from what the earlier sweep learned instead of
from random points; no epoch is spent evaluating them again. They are marked (`WARM_ATTR`) and are
not this sweep's trials: `own_trials` leaves them out of its counts, its best trial and its table.

Only what the new space can hold is carried over: a parameter the new space does not search is
dropped from every trial; a trial with a value outside the new range or choices is left out. What
was dropped is said, printed and recorded. Optuna only, no Ray or MLflow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.config import ConfigError
from sweeps.space import Space

FIELD = "warm_start.from_sweep"
WARM_ATTR = "warm_start_from"  # user attr of an added trial: "<earlier sweep>#<its trial number>"


@dataclass(frozen=True)
class WarmStart:
    source: str  # the earlier sweep's name
    trials: tuple[FrozenTrial, ...]  # ready for study.add_trials: the new space's distributions
    finished: int  # the earlier sweep's COMPLETE trials
    dropped: tuple[str, ...]  # what was left out and why, one line each

    def note(self) -> str:
        text = f"{len(self.trials)} of {self.finished} finished trials of sweep {self.source} added as known results"
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


def load_warm_start(
    source: str,
    name: str,
    storage: optuna.storages.BaseStorage,
    space: Space,
    objectives: Sequence[tuple[str, str]],
    saved_objectives: Sequence[str] | None = None,
) -> WarmStart:
    """Read sweep `source`'s study from `storage` and carry its finished trials over; bad input
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
    return WarmStart(source, tuple(carried), len(finished), tuple(dropped))
