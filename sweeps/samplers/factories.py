"""Optuna samplers (always seeded explicitly): the factories of sweeps.registry.SAMPLERS and the bounded TPE."""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps import registry
from sweeps.config.settings import SamplerSettings  # plain settings: no cycle back to the samplers


class _GridSampler(optuna.samplers.GridSampler):
    """GridSampler over the space's distinct active points (space.grid_points), each once, without
    its end-of-grid `study.stop()`, which only works inside `study.optimize` and raises under ask/tell
    (Ray Tune's loop); n_trials is capped at the number of points.

    Optuna's GridSampler walks the product of every parameter's values: on a conditional space it
    gives a point once per value of each parameter the point leaves inactive (a strength without its
    regularizer), which define-by-run never asks for, so the same trial runs again. Here the grid is
    the active points themselves (None where a parameter is inactive; never read)."""

    def __init__(self, search_space: dict[str, list[Any]], points: list[dict[str, Any]], seed: int | None = None) -> None:
        super().__init__(search_space, seed=seed)
        self._all_grids = [tuple(point.get(name) for name in self._param_names) for point in points]
        self._rng.rng.shuffle(self._all_grids)  # as Optuna's: a seeded order
        self._n_min_trials = len(self._all_grids)

    def after_trial(self, study, trial, state, values) -> None:  # type: ignore[no-untyped-def]
        return None


class _BruteForceSampler(optuna.samplers.BruteForceSampler):
    """BruteForceSampler whose `study.stop()` once the space is exhausted (which raises under
    ask/tell) only marks it exhausted: the searcher then ends the sweep (`exhausted`)."""

    exhausted = False

    def after_trial(self, study, trial, state, values) -> None:  # type: ignore[no-untyped-def]
        ended: list[bool] = []
        study.stop = lambda: ended.append(True)  # the instance's, for this call only
        try:
            super().after_trial(study, trial, state, values)
        finally:
            del study.stop
        self.exhausted = self.exhausted or bool(ended)


def exhausted(sampler: optuna.samplers.BaseSampler, study: optuna.Study) -> bool:
    """Whether a discrete sampler has proposed every point (grid, bruteforce): the searcher ends
    the sweep then, instead of proposing visited points again."""
    if isinstance(sampler, optuna.samplers.GridSampler):
        return sampler.is_exhausted(study)
    return bool(getattr(sampler, "exhausted", False))


def make_sampler(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler sweeps.registry names, built by its factory below; every sampler gets the
    sweep's seed explicitly, none reads global random state. Settings come from its YAML."""
    entry = registry.SAMPLERS[settings.name]
    factory = entry.load()
    if isinstance(factory, type):  # an Optuna sampler class itself: its seed and the settings the entry reads
        return factory(seed=seed, **{key: getattr(settings, key) for key in entry.settings})
    return factory(settings, seed)


def kept_trials(finished: Sequence[FrozenTrial], best: Sequence[FrozenTrial], limit: int) -> list[FrozenTrial]:
    """The finished trials a bounded TPE sees: `best` (the ones TPE puts in its "below" model) and
    the most recent others, `limit` in all, in trial-number order as TPE reads them. `finished` is
    in number order; only its tail is read, so the cost is the limit's, not the study's."""
    chosen = {t.number for t in best}
    recent: list[FrozenTrial] = []
    for t in reversed(finished):
        if len(recent) >= limit - len(chosen):
            break
        if t.number not in chosen:
            recent.append(t)
    return sorted([*best, *recent], key=lambda t: t.number)


class _StudyView:
    """A study whose `_get_trials` answers from a fixed list of trials (what TPE reads); everything
    else (directions, the study's id, the constant liar's params) is the study's own."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        self._study, self._trials = study, trials

    def _get_trials(self, deepcopy: bool = False, states: Container[TrialState] | None = None, use_cache: bool = False):  # type: ignore[no-untyped-def]
        return [t for t in self._trials if states is None or t.state in states]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _violated(trial: FrozenTrial) -> bool:
    return any(v > 0 for v in trial.constraints.values())


class _BoundedTPESampler(optuna.samplers.TPESampler):
    """TPE that builds its Parzen estimators from at most `history` finished trials, so an ask costs
    about the same at trial 2,000 as at trial `history` (measured so far; Optuna's TPE reads every
    trial at every ask, its cost grows linearly: docs/performance.md, "TPE's cost as the study grows").

    Kept: the best gamma(history) trials, the very ones TPE's own split puts in "below" (gamma
    saturates at 25 from 250 trials, so from history=250 on the "below" model is the unbounded
    one's), and the most recent others, which TPE's `default_weights` weigh most in "above" (it
    ramps older trials' weight down to 1/n). Running trials all stay: the constant liar counts them.
    Below `history` finished trials it is Optuna's TPE, proposal for proposal.

    A finished trial never changes, so what it contributes is taken once, as it is first seen: its
    distributions to the group search space, its value to the running best."""

    def __init__(self, *, history: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._history = history
        self._seen: set[int] = set()
        self._open = 0  # the oldest trial not yet finished: every one before it has been taken
        self._running: list[FrozenTrial] = []  # as of the last catch-up (this ask's): the constant liar's
        self._finished: list[FrozenTrial] = []  # every finished trial, in number order
        self._unspaced: list[FrozenTrial] = []  # finished trials the group search space has not had yet
        self._best: list[FrozenTrial] = []  # single objective: the best complete, then the best pruned
        self._feasible = 0  # finished trials without a violated constraint, of `self._finished`

    def _catch_up(self, study: optuna.Study) -> None:
        from optuna.samplers._tpe import sampler as tpe_module

        # Every trial in number order (Optuna's list for this ask, not a copy). Those before
        # `self._open` are finished and taken: only the trials since the oldest unfinished are read.
        trials = study._get_trials(deepcopy=False, use_cache=True)
        if any(trials[i].number != i for i in {0, self._open, len(trials) - 1} if 0 <= i < len(trials)):
            self._open = 0  # not numbered by position (never seen with Optuna's storages): read them all
        new, self._running, oldest_open = [], [], None
        for t in trials[self._open :]:
            if t.state in _FINISHED and t.number not in self._seen:
                new.append(t)
            elif not t.state.is_finished():
                oldest_open = t.number if oldest_open is None else oldest_open
                if t.state == TrialState.RUNNING:
                    self._running.append(t)
        self._open = len(trials) if oldest_open is None else oldest_open
        if not new:
            return
        self._seen.update(t.number for t in new)
        self._unspaced += new
        self._feasible += sum(not _violated(t) for t in new)
        for t in new:
            bisect.insort(self._finished, t, key=lambda x: x.number)
        if len(study.directions) == 1:  # the best of (best so far + new) is the best of all: Optuna's order, kept stable
            n_below = (self._gamma or tpe_module.default_gamma)(self._history)
            pool = sorted([*self._best, *new], key=lambda x: x.number)
            pool = [t for t in pool if not _violated(t)]  # TPE ranks them below every feasible trial
            complete = tpe_module._split_complete_trials([t for t in pool if t.state == TrialState.COMPLETE], study, n_below)[0]
            pruned = tpe_module._split_pruned_trials([t for t in pool if t.state == TrialState.PRUNED], study, n_below)[0]
            self._best = complete + pruned

    def _below(self, study: optuna.Study) -> list[FrozenTrial]:
        """What TPE's `_split_trials` puts in "below": the best feasible trials (an infeasible
        proposal, sweeps.samplers.feasibility, would come after every feasible one: with `history` >= 250
        there are always enough feasible ones before it)."""
        from optuna.samplers._tpe import sampler as tpe_module

        if len(study.directions) > 1:  # Pareto ranks do not compose: from all complete trials
            n_below = (self._gamma or tpe_module.default_gamma_multiobjective)(self._history)
            complete = [t for t in self._finished if t.state == TrialState.COMPLETE and not _violated(t)]
            best = tpe_module._split_complete_trials(complete, study, n_below)[0]
            pruned = [t for t in self._finished if t.state == TrialState.PRUNED and not _violated(t)]
            return best + tpe_module._split_pruned_trials(pruned, study, n_below - len(best))[0]
        n_below = (self._gamma or tpe_module.default_gamma)(self._history)
        complete = [t for t in self._best if t.state == TrialState.COMPLETE]
        return complete + [t for t in self._best if t.state == TrialState.PRUNED][: n_below - len(complete)]

    def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
        # With group=True Optuna re-reads every finished trial's distributions at each ask; its group
        # space only accumulates, so it gets each trial once. (group=False: that space keeps its own cursor.)
        if not self._group:
            return super().infer_relative_search_space(study, trial)
        self._catch_up(study)
        new, self._unspaced = self._unspaced, []
        return super().infer_relative_search_space(_StudyView(study, new), trial)

    def _sample(self, study, trial, search_space):  # type: ignore[no-untyped-def]
        self._catch_up(study)
        if len(self._finished) <= self._history:
            return self._sample_below_feasible(study, self._feasible, trial, search_space)
        running = self._running if self._constant_liar else []
        kept = kept_trials(self._finished, self._below(study), self._history)
        view = _StudyView(study, kept + running)
        return self._sample_below_feasible(view, sum(not _violated(t) for t in kept), trial, search_space)

    def _sample_below_feasible(self, study, feasible: int, trial, search_space):  # type: ignore[no-untyped-def]
        """TPE's proposal with no infeasible trial in its "below" model: at most `feasible` trials there.

        Optuna's c-TPE fills "below" with the least violating infeasible trials whenever fewer
        than gamma(n) feasible ones have finished. A sweep hits that at its start: its first
        feasible proposals are all still training (running: the constant liar puts them in
        "above") while every infeasible one is finished at once, so n_startup_trials is reached
        with infeasible trials alone, "below" is only infeasible nets, TPE proposes more of them
        and they feed "below" again (space=small at 8x8 with 64 slots: 100 in a row after 42
        trained). Capped, "below" holds the feasible trials only, none at first: TPE then draws
        from its prior and picks the candidates its "above" model (the infeasible and the running
        ones) explains least. With gamma(n) feasible trials or more the cap changes nothing."""
        from optuna.samplers._tpe import sampler as tpe_module

        own = self._gamma  # None: Optuna's default for the study's directions, as its _sample picks
        gamma = own or (tpe_module.default_gamma if len(study.directions) == 1 else tpe_module.default_gamma_multiobjective)
        self._gamma = lambda n: min(gamma(n), feasible)
        try:
            return super()._sample(study, trial, search_space)
        finally:
            self._gamma = own


def tpe(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    # multivariate + group: TPE models the conditional parameters jointly, per active subspace
    # (flagged experimental by Optuna since 2.2; stable in use, so the warning is silenced).
    # No warn_independent_sampling: deprecated in Optuna 4.9 (a FutureWarning on every sweep)
    # and off by default since. `history` bounds what it reads (see _BoundedTPESampler).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _BoundedTPESampler(
            history=settings.history, seed=seed, n_startup_trials=settings.n_startup_trials, multivariate=True, group=True
        )


def random(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def grid(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    assert settings.grid is not None and settings.points is not None
    return _GridSampler(settings.grid, settings.points, seed=seed)


def cmaes(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=settings.n_startup_trials, warn_independent_sampling=False)


def gp(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=settings.n_startup_trials, warn_independent_sampling=False)


def qmc(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # experimental since Optuna 3.0, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(
            seed=seed, scramble=True, warn_independent_sampling=False, warn_asynchronous_seeding=False
        )


def bruteforce(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    return _BruteForceSampler(seed=seed)


def nsga2(settings: SamplerSettings, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=settings.population_size)
