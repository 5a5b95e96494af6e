"""The product's TPE keeps proposing feasible nets while a sweep fills its slots: infeasible proposals
finish at once (the driver rejects them), feasible ones are still training, so for a while every
finished trial TPE reads is infeasible. Optuna's c-TPE put the least violating of them in "below",
TPE proposed more of them, and a digits sweep on space=small with 64 slots died after 42 trained
(100 infeasible in a row). _BoundedTPESampler keeps "below" to feasible trials."""

import heapq
import random
import warnings

import optuna
import pytest

from benchmarks.simulated import curve
from sweeps.config.validation import load_config
from sweeps.core.errors import ConfigError
from sweeps.samplers.factories import make_sampler
from sweeps.samplers.feasibility import CONSTRAINT, Proposer, Redraws, describe_space

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _sweep(slots: int, trained: int, seed: int) -> tuple[Redraws, optuna.Study]:
    """Proposals as the driver makes them (Proposer, the small space, digits' 8x8x1 input), `slots`
    trials training at once: each runs two epochs of benchmarks/simulated.py's curve, the worse half
    pruned after the first (ASHA-like), and is replaced as it ends, until `trained` were proposed."""
    cfg = load_config(["space=small", "dataset=digits", f"seed={seed}", "name=ctpe"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction="maximize", sampler=make_sampler(cfg.sampler, cfg.seed))
    redraws = Redraws(cfg.max_infeasible_in_a_row, describe_space(cfg.space.searched))
    proposer = Proposer(dict(cfg.model), dict(cfg.space.fixed), (8, 8, 1), 10, cfg.space.max_params, cfg.space.max_flops, redraws)
    from sweeps.space import define_by_run

    suggest = define_by_run(cfg.space, cfg.model)
    clock, started, running, firsts = 0.0, 0, [], []
    times = random.Random(seed)
    while running or started < trained:
        while len(running) < slots and started < trained:
            trial, _ = proposer.propose(study, lambda t: (suggest(t), t.params)[1])
            started += 1
            heapq.heappush(running, (clock + times.uniform(1, 2), trial.number, trial, 1))
        clock, _, trial, epoch = heapq.heappop(running)
        value = curve({**cfg.model, **trial.params}, epoch)["val_accuracy"]
        trial.report(value, epoch)
        if epoch == 2:
            study.tell(trial, value)
        elif value < sorted([*firsts, value])[len(firsts) // 2]:
            firsts.append(value)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            firsts.append(value)
            heapq.heappush(running, (clock + times.uniform(1, 2), trial.number, trial, 2))
    return redraws, study


@pytest.mark.parametrize(
    ("slots", "trained", "seed", "most_infeasible"),
    [
        (64, 100, 0, 0.3),  # the run (64 CPUs, 1 each): it died with 351 of 390 proposals infeasible
        (64, 100, 1, 0.3),
        (8, 40, 0, 0.3),  # a few slots: fewer trials finish infeasible before a feasible one
        (1, 30, 0, 0.3),  # one at a time: every proposal is told before the next
    ],
)
def test_tpe_proposes_feasible_nets_while_the_first_trials_train(slots, trained, seed, most_infeasible):
    # Random proposals on this space are 25% infeasible (padding=valid with kernel 3: 2 of 8 nets).
    try:
        redraws, study = _sweep(slots, trained, seed)
    except ConfigError as exc:
        pytest.fail(f"the sweep died: {exc}")
    assert redraws.total / (redraws.total + trained) < most_infeasible
    infeasible = [t for t in study.trials if t.user_attrs.get("outcome") == "INFEASIBLE"]
    assert len(infeasible) == redraws.total  # each one still recorded as it was, with its constraint
    assert all(t.state == optuna.trial.TrialState.PRUNED and t.constraints[CONSTRAINT] > 0 for t in infeasible)


def test_below_holds_no_infeasible_trial_and_is_optunas_once_enough_feasible_ones_finished(monkeypatch):
    """The cap on "below" binds only while fewer than gamma(n) feasible trials have finished."""
    from optuna.samplers._tpe import sampler as tpe_module

    seen = []
    split = tpe_module._split_trials

    def spy(study, trials, n_below):
        below, above = split(study, trials, n_below)
        finished = [t for t in trials if t.state != optuna.trial.TrialState.RUNNING]  # the constant liar's are read too
        feasible = sum(1 for t in finished if not t.constraints)
        seen.append((n_below, tpe_module.default_gamma(len(finished)), feasible, below))
        return below, above

    monkeypatch.setattr(tpe_module, "_split_trials", spy)
    _sweep(64, 70, 0)
    assert seen
    for n_below, gamma, feasible, below in seen:
        assert not any(t.constraints for t in below)
        assert n_below == min(gamma, feasible)
    assert any(feasible == 0 for _, _, feasible, _ in seen)  # the case that went wrong was met
    assert any(feasible >= gamma for _, gamma, feasible, _ in seen)
