"""The worker<->driver protocol: the keys of a trial's config and reports, its snapshot's file names, and
the settings every trial is sent. Their one home: the trainable (sweeps.worker) writes them, the driver's
callbacks, searcher, recovery and summary read them. Pure: imports nothing heavy (no os.environ either).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sweeps.core.metrics import EPOCH_METRICS

MODEL_FILE = "model.keras"  # the best epoch's model: what the sweep keeps
RESUME_FILE = "resume.keras"  # the last epoch's model and optimizer, where it is not the best epoch's
STATE_FILE = "state.json"  # the snapshot's epoch, best-so-far record and files; written last
EPOCH = "epoch"  # every report's epoch: the step its metrics are logged at, the scheduler's clock
# A config key set only for an interrupted trial that a resumed sweep continues: its Optuna trial
# number, which `TrialSettings.continue_from` maps to the snapshot it goes on from.
CONTINUES = "continues"
# scheduler=pbt: a trial's config is {MEMBER: {**params, MEMBER_NUMBER: its Optuna trial number}}
# (sweeps.schedulers.pbt.Population gives Tune the population as one grid of whole configs). PBT copies the whole
# config when it clones a trial, the number too: the runner reads it once, at the trial's start.
MEMBER = "pbt_member"
MEMBER_NUMBER = "optuna_trial_number"
# Reported once by a trial that went on from another trial's checkpoint (PBT's exploit): that trial's id.
CLONED_FROM = "pbt_cloned_from"
EXPLORED_PREFIX = "pbt/"  # each epoch's report: pbt/<param> = the value of each param PBT explores


def trial_params(config: dict[str, Any]) -> dict[str, Any]:
    """The sampled params in a Tune trial's config (without the keys that only route it)."""
    flat = config.get(MEMBER, config)
    return {k: v for k, v in flat.items() if k not in (CONTINUES, MEMBER_NUMBER)}


# Keys every report carries besides the per-epoch metrics.
FINISHED = "trial_finished"  # True only on the report after the last epoch the trial meant to train
INFEASIBLE = "infeasible_reason"
# The traceback of a failure that would fail again on any worker (see `deterministic`): reported as
# the trial's last result instead of raised, so Tune does not retry it.
FAILED_ERROR = "failed_error"


@dataclass(frozen=True)
class TrialSettings:
    """Everything a trial needs besides its sampled params; picklable, sent once per sweep."""

    model: dict[str, Any]  # model defaults merged with the space's constants
    input_shape: tuple[int, int, int]
    num_classes: int
    objectives: tuple[tuple[str, str], ...]  # (metric, mode); the first picks the kept checkpoint
    max_epochs: int
    seed: int
    cpus: int
    gpu_fraction: float = 0.0  # the GPU share Ray gave each trial (0: CPU only)
    max_params: int | None = None
    max_flops: int | None = None
    # Epochs after which the scheduler may stop a trial (its rungs and the last epoch): the best
    # epoch's weights are written there. Empty: after every improving epoch.
    stop_epochs: frozenset[int] = frozenset()
    # Epochs after which the scheduler may pause a trial (HyperBand's milestones): it goes on later
    # from its newest checkpoint, so one is written there whether or not the epoch improved.
    pause_epochs: frozenset[int] = frozenset()
    checkpoint_every_s: float = 60.0  # and at most this long after the last one, for retries and resumes
    # Interrupted trials a resumed sweep continues: Optuna trial number -> snapshot folder ("": none).
    continue_from: tuple[tuple[int, str], ...] = ()
    stop_at: float | None = None  # the sweep's goal for the first objective: a trial reaching it ends there, complete
    explored: tuple[str, ...] = ()  # scheduler=pbt: the params it explores, reported each epoch


def best_key(metric: str) -> str:
    return f"best_{metric}"


def objective_key(metric: str) -> str:
    """The report key whose final value a trial's objective takes: the best epoch for epoch
    metrics (the checkpoint that is kept), the value itself for params and flops."""
    return best_key(metric) if metric in EPOCH_METRICS else metric


def reached_goal(value: float, goal: float | None, mode: str) -> bool:
    """Whether `value` reaches the sweep's `stop_at` (at or above it for max, at or below for min)."""
    return goal is not None and (value >= goal if mode == "max" else value <= goal)
