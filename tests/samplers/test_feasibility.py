"""Infeasible proposals: the plan's rule and size, what Optuna and its samplers are told, bounded redraws."""

import optuna
import pytest

from sweeps.core.errors import ConfigError
from sweeps.samplers.feasibility import CONSTRAINT, Redraws, Rejection, rejection, tell_infeasible, violated
from tests.models.test_plan import BASE


@pytest.mark.parametrize(
    ("changes", "budgets", "kind"),
    [
        ({"strides": 2, "dilation_rate": 2}, {}, "strides_with_dilation"),
        ({"padding": "valid", "kernel_size": 5, "dilation_rate": 2}, {}, "kernel_larger_than_input"),
        ({"blocks": 4}, {}, "pooling_leaves_nothing"),
        ({}, {"max_params": 100}, "max_params"),
        ({}, {"max_flops": 100}, "max_flops"),
    ],
)
def test_each_rule_is_named_and_sized(changes, budgets, kind):
    found = rejection({**BASE, **changes}, (8, 8, 1), 10, **budgets)
    assert found is not None and found.kind == kind and found.violation > 0


def test_over_budget_says_by_how_much():
    fits = rejection(BASE, (8, 8, 1), 10)
    assert fits is None
    over = rejection(BASE, (8, 8, 1), 10, max_params=1000)
    from models.plan import plan_conv2d

    assert over.violation == pytest.approx(plan_conv2d(BASE, (8, 8, 1), 10).params / 1000 - 1)


def test_told_to_optuna_as_an_infeasible_pruned_trial():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.suggest_int("x", 0, 10)
    tell_infeasible(study, trial, Rejection("max_params", "1,000 parameters exceed max_params=10", 99.0))
    frozen = study.trials[0]
    assert frozen.state == optuna.trial.TrialState.PRUNED
    assert frozen.constraints == {CONSTRAINT: 99.0} and violated(frozen)
    assert frozen.user_attrs["outcome"] == "INFEASIBLE" and frozen.user_attrs["infeasible_kind"] == "max_params"


def test_tpe_ranks_an_infeasible_proposal_below_every_feasible_trial():
    """c-TPE (Optuna 5): the constraint puts the proposal after the complete and the pruned trials."""
    from optuna.samplers._tpe.sampler import _split_trials

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    for value in (0.1, 0.2):
        study.enqueue_trial({"x": 1})
        t = study.ask()
        t.suggest_int("x", 0, 10)
        study.tell(t, value)
    t = study.ask()
    t.suggest_int("x", 0, 10)
    tell_infeasible(study, t, Rejection("shape", "no", 1.0))
    trials = study.get_trials(deepcopy=False)
    below, above = _split_trials(study, trials, n_below=2)
    assert [x.number for x in below] == [0, 1] and [x.number for x in above] == [2]


def test_redraws_are_bounded_with_one_clear_error():
    redraws = Redraws(limit=3, space="the space searching strides, dilation_rate")
    redraws.rejected(Rejection("max_params", "600,000 parameters exceed max_params=500,000", 0.2))
    redraws.accepted()  # a feasible proposal resets the count
    redraws.rejected(Rejection("strides_with_dilation", "block 1: strides=2 with dilation_rate=2", 1.0))
    redraws.rejected(Rejection("strides_with_dilation", "block 2: strides=2 with dilation_rate=2", 1.0))
    with pytest.raises(ConfigError) as caught:
        redraws.rejected(Rejection("strides_with_dilation", "block 3: strides=2 with dilation_rate=2", 1.0))
    text = str(caught.value)
    assert caught.value.field == "space"
    assert "3 infeasible nets in a row from the space searching strides, dilation_rate" in text
    assert (
        "rejected most: strides_with_dilation (3 of 4, e.g. block 1: strides=2 with dilation_rate=2); then max_params 1" in text
    )
    assert "search strides or dilation_rate, not both above 1" in text
    assert "max_infeasible_in_a_row (now 3)" in text


def test_bruteforce_marks_itself_exhausted_instead_of_stopping():
    from sweeps.samplers.factories import _BruteForceSampler, exhausted

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = _BruteForceSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    for _ in range(3):
        assert not exhausted(sampler, study)
        t = study.ask()
        t.suggest_categorical("k", [1, 3, 5])
        study.tell(t, state=optuna.trial.TrialState.PRUNED)
    assert exhausted(sampler, study)


def test_the_infeasible_benchmark_counts_proposals_before_and_after():
    """benchmarks/infeasible.py at a smoke size: before, every proposal is one of the 20 trials; after,
    proposals go on until 20 feasible ones (random on space=conv2d proposes infeasible nets)."""
    from benchmarks.infeasible import proposals

    bad_before, total_before = proposals("random", 0, 20, (8, 8, 1), 10, redraw=False)
    bad_after, total_after = proposals("random", 0, 20, (8, 8, 1), 10, redraw=True)
    assert total_before == 20 and 0 < bad_before < 20
    assert total_after - bad_after == 20 and bad_after > 0
