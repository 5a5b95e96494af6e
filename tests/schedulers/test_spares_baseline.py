"""The baseline (the user's own model, trial 0) is never stopped early: it is the reference every
champion is set against. Ray Tune's own ASHA and median rule decide on real results; only their
STOP of the baseline before max_epochs becomes CONTINUE, and its results still cut the others."""

from dataclasses import dataclass

import pytest
from ray.tune.schedulers import TrialScheduler

from sweeps.config.validation import load_config
from sweeps.schedulers.builtin import SparesTheBaseline, make_scheduler

pytestmark = pytest.mark.ray


@dataclass(frozen=True)
class _Trial:  # what the two schedulers read of Tune's Trial: its id, as a dict key
    trial_id: str
    status: str = "RUNNING"


@dataclass(frozen=True)
class _Controller:  # what the median rule asks Tune's controller: the live trials (it pauses none here)
    trials: tuple

    def get_live_trials(self):
        return list(self.trials)


def _decisions(scheduler_overrides, curves, baseline_id):
    """Each trial's decisions, the curves reported epoch by epoch, trial after trial in turn."""
    cfg = load_config(["max_epochs=4", *scheduler_overrides])
    scheduler = make_scheduler(cfg)
    assert isinstance(scheduler, SparesTheBaseline)
    scheduler.set_search_properties("val_accuracy", "max")
    scheduler.spared = lambda trial_id: trial_id == baseline_id
    trials = {name: _Trial(name) for name in curves}
    controller = _Controller(tuple(trials.values()))
    for trial in trials.values():
        scheduler.on_trial_add(controller, trial)
    decisions: dict[str, list[str]] = {name: [] for name in curves}
    for epoch in range(1, 5):
        for name, curve in curves.items():
            if TrialScheduler.STOP in decisions[name]:
                continue
            result = {"epoch": epoch, "val_accuracy": curve[epoch - 1], "training_iteration": epoch}
            decisions[name].append(scheduler.on_trial_result(controller, trials[name], result))
    return decisions


CURVES = {"good": [0.8, 0.85, 0.9, 0.92], "fair": [0.6, 0.7, 0.75, 0.8], "base": [0.1, 0.12, 0.15, 0.2]}
SCHEDULERS = {
    "asha": ["scheduler=asha", "scheduler.grace_period=1", "scheduler.reduction_factor=2"],
    "median": ["scheduler=median", "scheduler.grace_period=1", "scheduler.min_samples=1"],
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_the_baseline_is_trained_to_max_epochs_where_the_scheduler_would_stop_it(name):
    # the same weak curve, as the baseline and as any other trial
    as_other = _decisions(SCHEDULERS[name], CURVES, baseline_id="good")
    assert TrialScheduler.STOP in as_other["base"][:3], as_other  # stopped before epoch 4 as a plain trial
    as_baseline = _decisions(SCHEDULERS[name], CURVES, baseline_id="base")
    assert as_baseline["base"][:3] == [TrialScheduler.CONTINUE] * 3, as_baseline  # trained on as the baseline
    assert len(as_baseline["base"]) == 4


def test_the_baseline_still_ends_at_max_epochs_and_the_others_are_still_stopped():
    decisions = _decisions(SCHEDULERS["asha"], {**CURVES, "bad": [0.05, 0.05, 0.05, 0.05]}, baseline_id="good")
    assert decisions["good"][-1] == TrialScheduler.STOP  # ASHA ends a trial at max_t: not turned into CONTINUE
    assert TrialScheduler.STOP in decisions["bad"][:3]
