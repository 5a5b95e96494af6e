"""scheduler=pbt, all of it: Tune's PBT kept inside the space, its steps, and its population (the search
Tune's PBT leaves to the sweep, told to Optuna through the one tell)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from ray import tune
from ray.train._internal.session import _FutureTrainingResult  # what Tune's PBT holds for a save not yet read
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from sweeps.config.settings import SweepConfig
from sweeps.core.protocol import EPOCH, FAILED_ERROR, FINISHED, INFEASIBLE, MEMBER, MEMBER_NUMBER, trial_params
from sweeps.core.records import PBT_FINAL_ATTR
from sweeps.samplers.factories import make_sampler
from sweeps.samplers.feasibility import Proposer, Rejection
from sweeps.samplers.tell import tell
from sweeps.space import define_by_run, pbt_mutations

if TYPE_CHECKING:
    from sweeps.driver.recovery import Continuation


class Population(tune.Callback):
    """scheduler=pbt's own search and its Optuna records. Tune's PBT refuses a searcher: it rewrites
    a trial's config when the trial clones a better one, which a searcher's record of that trial
    cannot follow. So the population (n_trials members) is asked from the sweep's study up front,
    sampled at random from the space with the sweep's seed (the points queued first: first_points),
    and given to Tune as fixed configs; each member is told to Optuna when it ends, as SweepSearch
    tells its trials, with the params it ended with (`pbt_final_params`) beside the ones it started with."""

    def __init__(
        self,
        study: optuna.Study,
        suggest: Callable[[optuna.Trial], dict[str, Any] | None],
        n: int,
        objective_keys: list[str],
        explored: tuple[str, ...],
        proposer: Proposer | None = None,
    ) -> None:
        self._ot_study, self._objective_keys, self.explored = study, objective_keys, explored
        self._members: dict[int, optuna.Trial] = {}
        self.configs: list[dict[str, Any]] = []
        # Infeasible members are redrawn as SweepSearch redraws; their records wait for the tracking.
        self.rejected: list[tuple[optuna.Trial, dict[str, Any], Rejection]] = []
        if proposer is not None:
            proposer.record = lambda trial, config, why: self.rejected.append((trial, config, why))

        def config_of(member: optuna.Trial) -> dict[str, Any]:
            outside = suggest(member)  # the baseline's values outside the space, else None
            return {**member.params, **(outside or {})}

        for _ in range(n):
            if proposer is not None:
                member, config = proposer.propose(study, config_of)  # type: ignore[misc]
            else:
                member = study.ask()
                config = config_of(member)
            self._members[member.number] = member
            self.configs.append({**config, MEMBER_NUMBER: member.number})
        self._ot_trials: dict[str, optuna.Trial] = {}
        self.continued: dict[str, Continuation] = {}  # a resumed PBT sweep continues no trial
        self._last: dict[str, tuple[dict, dict]] = {}  # tune trial id -> last result, config then
        self._reported: dict[str, set[int]] = {}
        self._told: set[str] = set()

    def optuna_trial(self, trial_id: str) -> optuna.Trial | None:
        return self._ot_trials.get(trial_id)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id not in self._ot_trials:  # its own config, before any clone copied another's
            self._ot_trials[trial.trial_id] = self._members[int(trial.config[MEMBER][MEMBER_NUMBER])]

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._last[trial.trial_id] = (result, dict(trial.config))
        ot_trial = self._ot_trials.get(trial.trial_id)
        if ot_trial is None or result.get(INFEASIBLE) or result.get(FAILED_ERROR) or trial.trial_id in self._told:
            return
        epoch, seen = int(result.get(EPOCH, 0)), self._reported.setdefault(trial.trial_id, set())
        metric = self._objective_keys[0].removeprefix("best_")
        if len(self._ot_study.directions) == 1 and metric in result and epoch not in seen:
            ot_trial.report(float(result[metric]), epoch)  # as SweepSearch does: by epoch
            seen.add(epoch)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tell(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tell(trial, error=True)

    def _tell(self, trial: Any, error: bool) -> None:
        ot_trial = self._ot_trials.get(trial.trial_id)
        if ot_trial is None or trial.trial_id in self._told:
            return
        result, config = self._last.pop(trial.trial_id, (trial.last_result, dict(trial.config)))
        final = trial_params(config)
        if final != ot_trial.params:
            ot_trial.set_user_attr(PBT_FINAL_ATTR, final)
        tell(self._ot_study, ot_trial, result, error, self._objective_keys)
        self._told.add(trial.trial_id)


@dataclass(frozen=True)
class _KeepInside:
    """PBT's explore step multiplies a value by 0.8 or 1.2: the result is kept inside the space."""

    bounds: dict[str, tuple[float, float]]

    def __call__(self, config: dict) -> dict:
        member = config[MEMBER]
        inside = {k: min(max(float(member[k]), lo), hi) for k, (lo, hi) in self.bounds.items() if k in member}
        return {**config, MEMBER: {**member, **inside}}


class PBT(PopulationBasedTraining):
    """Tune's PBT, which perturbs at any result: not at a trial's last one (its function has
    returned; a clone would train no epoch with the config it was given). It names the checkpoints
    it still needs (`pinned`), which the sweep's retention spares (sweeps.execution.callbacks)."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get(FINISHED):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def pinned(self) -> set[str]:
        """The checkpoints PBT still needs, by path: no retention may delete them yet.

        - each unfinished member's restore point (Tune's `trial.checkpoint`): a clone's is the
          checkpoint `_exploit` handed it, a folder of its source's, and stays so until the clone
          registers a checkpoint of its own, however late it starts (it may wait for a slot while the
          source trains on) and through a retry before then;
        - each member's checkpoint of its last step in the top quantile (`last_checkpoint`), which the
          next exploit may hand to a clone, though the member has saved newer ones since.

        Everything else of a member but its newest checkpoint may go, so disk stays bounded over a
        long run: a pin ends when the clone saves, or the member steps again, or finishes."""
        paths: set[str] = set()
        for trial, state in self._trial_state.items():
            if trial.is_finished():
                continue  # restores nothing, and PBT clones no finished member (`_quantiles`)
            for checkpoint in (trial.checkpoint, state.last_checkpoint):
                if isinstance(checkpoint, _FutureTrainingResult):
                    # a save PBT asked for: once done, it names the checkpoint the member had then;
                    # until then, that is the member's newest, which the retention keeps anyway
                    done = checkpoint.resolve(block=False)
                    checkpoint = done.checkpoint if done is not None else None
                if checkpoint is not None:
                    paths.add(str(checkpoint.path))
        return paths


def pbt(cfg: SweepConfig) -> TrialScheduler:
    mutations = pbt_mutations(cfg.space)
    return PBT(
        time_attr=EPOCH,
        perturbation_interval=cfg.scheduler.perturbation_interval,
        quantile_fraction=cfg.scheduler.quantile_fraction,
        hyperparam_mutations={
            MEMBER: {k: (tune.loguniform if d.log else tune.uniform)(d.low, d.high) for k, d in mutations.items()}
        },
        custom_explore_fn=_KeepInside({k: (d.low, d.high) for k, d in mutations.items()}),
    )


def pbt_steps(cfg: SweepConfig) -> frozenset[int]:
    """Where PBT may clone a trial (or pause it for another member): every perturbation_interval epochs."""
    return frozenset(range(cfg.scheduler.perturbation_interval, cfg.max_epochs, cfg.scheduler.perturbation_interval))


def population(
    cfg: SweepConfig,
    storage: optuna.storages.BaseStorage,
    n: int,
    objective_keys: list[str],
    first: Callable[[optuna.Study], None] | None,
    out: Any,
    proposer: Proposer | None = None,
) -> Population:
    """scheduler=pbt's search: the sweep's study (`first` queues a fresh one's first points), its population
    of n members sampled at random from the space, and the line that tells the terminal so."""
    explored = tuple(pbt_mutations(cfg.space))
    study = optuna.create_study(
        study_name=cfg.name,
        storage=storage,
        sampler=make_sampler(cfg.sampler, cfg.seed),  # random (sweeps.config.validation): see Population
        directions=["maximize" if d == "max" else "minimize" for _, d in cfg.objectives],
        load_if_exists=True,
    )
    if first is not None:
        first(study)
    search = Population(study, define_by_run(cfg.space, cfg.model), n, objective_keys, explored, proposer)
    print(
        f"scheduler=pbt: a population of {n} sampled at random from the space (seed {cfg.seed}); every"
        f" {cfg.scheduler.perturbation_interval} epochs the worst clone the best and explore {', '.join(explored)}"
        " (Tune's PBT refuses a searcher, so no sampler learns from the trials)",
        file=out,
        flush=True,
    )
    return search
