"""The built-in schedulers of sweeps.registry.SCHEDULERS: each entry names its factory here and, when it stops
trials early, the epochs where it may stop or pause one (the trial then goes on from its newest checkpoint, so
one must be written at that epoch). `make_scheduler` builds the configured one, as Ray Tune's `create_scheduler`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, MedianStoppingRule, TrialScheduler

from sweeps.config.settings import SweepConfig
from sweeps.core.protocol import EPOCH
from sweeps.registry import SCHEDULERS


class SparesTheBaseline:
    """A scheduler that never stops the sweep's baseline (the user's own model, trial 0) before
    max_epochs: it is the reference every champion is set against, so it is trained as written. Its
    results still enter the rungs (ASHA) and the running means (median rule) the others are cut by.
    `spared(trial_id)` is set by the runner once the search that knows the baseline exists."""

    spared: Callable[[str], bool] = staticmethod(lambda trial_id: False)
    last_epoch: int = 0

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        if decision == TrialScheduler.STOP and result.get(EPOCH, 0) < self.last_epoch and self.spared(trial.trial_id):
            self._forget_stop(trial)
            return TrialScheduler.CONTINUE
        return decision

    def _forget_stop(self, trial: Any) -> None:
        """Undo what the scheduler noted when it decided to stop `trial` (ASHA notes nothing)."""


class _ASHA(SparesTheBaseline, AsyncHyperBandScheduler):
    pass


class _Median(SparesTheBaseline, MedianStoppingRule):
    def _forget_stop(self, trial: Any) -> None:
        self._stopped_trials.discard(trial)  # else its next result trips Tune's "never seen again" assertion


def asha(cfg: SweepConfig) -> TrialScheduler:
    scheduler = _ASHA(
        time_attr=EPOCH,
        max_t=cfg.max_epochs,  # a continued trial's clock goes on from its checkpoint
        grace_period=cfg.scheduler.grace_period,
        reduction_factor=cfg.scheduler.reduction_factor,
    )
    scheduler.last_epoch = cfg.max_epochs
    return scheduler


def asha_rungs(cfg: SweepConfig) -> frozenset[int]:
    """ASHA decides at the first result at or past each rung: grace * rf^k below max_t."""
    rungs, milestone = set(), cfg.scheduler.grace_period
    while milestone < cfg.max_epochs:
        rungs.add(math.ceil(milestone))
        milestone *= cfg.scheduler.reduction_factor
    return frozenset(rungs)


def hyperband(cfg: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(time_attr=EPOCH, max_t=cfg.max_epochs, reduction_factor=cfg.scheduler.reduction_factor)


def hyperband_pauses(cfg: SweepConfig) -> frozenset[int]:
    return hyperband_milestones(cfg.max_epochs, cfg.scheduler.reduction_factor)


def hyperband_milestones(max_t: int, eta: int) -> frozenset[int]:
    """Where Tune's (synchronous) HyperBand halts a trial: every bracket s starts at
    r0 = int(max_t * eta^-s) and multiplies its milestone by eta (capped at max_t) at each halving;
    there a trial is paused until its bracket is done, then stopped or resumed (as Tune's
    `HyperBandScheduler` and `_Bracket.successive_halving` compute them)."""
    s_max_1 = int(round(math.log(max_t) / math.log(eta))) + 1
    milestones: set[int] = set()
    for s in range(s_max_1):
        r = int(max_t * eta ** (-s))
        if r == 0:
            continue
        for _ in range(s + 1):
            milestones.add(min(r, max_t))
            r = int(min(r * eta, max_t))
    return frozenset(m for m in milestones if m < max_t)


def median(cfg: SweepConfig) -> TrialScheduler:
    scheduler = _Median(time_attr=EPOCH, grace_period=cfg.scheduler.grace_period, min_samples_required=cfg.scheduler.min_samples)
    scheduler.last_epoch = cfg.max_epochs
    return scheduler


def from_grace(cfg: SweepConfig) -> frozenset[int]:
    """The median rule may stop a trial at any result once it is grace_period epochs old."""
    return frozenset(range(cfg.scheduler.grace_period, cfg.max_epochs))


def fifo(cfg: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def make_scheduler(cfg: SweepConfig) -> TrialScheduler:
    """As Ray Tune's `create_scheduler`: the registry's factory, imported now."""
    return SCHEDULERS[cfg.scheduler.name].load()(cfg)


def stop_epochs(cfg: SweepConfig) -> frozenset[int]:
    """The epochs after which the sweep's scheduler may stop or pause a trial, and the last epoch:
    where a trial writes its checkpoint after an improvement. A scheduler that declares it never
    stops trials early (sweeps.registry) adds none, whatever Tune class it builds."""
    return frozenset(e for e in SCHEDULERS[cfg.scheduler.name].epochs("stop", cfg) if 0 < e < cfg.max_epochs) | {cfg.max_epochs}


def pause_epochs(cfg: SweepConfig) -> frozenset[int]:
    """Epochs after which the scheduler may pause a trial: a checkpoint is written there always."""
    return frozenset(e for e in SCHEDULERS[cfg.scheduler.name].epochs("pause", cfg) if 0 < e < cfg.max_epochs)
