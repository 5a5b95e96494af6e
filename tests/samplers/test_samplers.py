"""A contract every sampler meets on every shipped space: seeded, conditional, feasible-aware."""

import importlib.util

import optuna
import pytest

from models.plan import InfeasibleModel, plan_conv2d
from sweeps.config.compose import CONF_DIR
from sweeps.config.validation import load_config
from sweeps.registry import SAMPLERS
from sweeps.samplers.factories import make_sampler
from sweeps.space import define_by_run, resolve_params

optuna.logging.set_verbosity(optuna.logging.ERROR)
SPACES = sorted(p.stem for p in (CONF_DIR / "space").glob("*.yaml"))
CONTINUOUS_OK = [s for s, e in SAMPLERS.items() if not e.discrete and (s != "gp" or importlib.util.find_spec("torch"))]


def _drive(cfg, n_trials, input_shape=(28, 28, 1)):
    """Ask/tell like the runner does: infeasible -> PRUNED with no value, else the model size."""
    study = optuna.create_study(sampler=make_sampler(cfg.sampler, cfg.seed), direction="minimize")
    suggest = define_by_run(cfg.space, cfg.model)
    infeasible = []
    for _ in range(n_trials):
        trial = study.ask()
        suggest(trial)
        params = resolve_params(cfg.model, cfg.space, trial.params)
        try:
            plan = plan_conv2d(params, input_shape, 10)
        except InfeasibleModel:
            infeasible.append(trial.number)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        study.tell(trial, float(plan.params))
    return study, infeasible


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("sampler", CONTINUOUS_OK)
def test_sampler_drives_every_space_within_its_distributions(sampler, space):
    """12 trials asked and told on each shipped space; each value the sampler proposes lies in its
    parameter's distribution, and the proposals are not one point over and over. (Only active params
    in a trial is define-by-run's guarantee, whatever the sampler: tests/test_space.py.)"""
    cfg = load_config([f"space={space}", f"sampler={sampler}"])
    study, _ = _drive(cfg, 12)
    assert len(study.trials) == 12 and all(t.state.is_finished() for t in study.trials)
    for trial in study.trials:
        for key, value in trial.params.items():
            dist = cfg.space.searched[key]
            assert dist._contains(dist.to_internal_repr(value)), (key, value, dist)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) > 1


@pytest.mark.parametrize("sampler", CONTINUOUS_OK)
def test_same_seed_same_proposals(sampler):
    cfg = load_config(["space=conv2d", f"sampler={sampler}"])
    first, _ = _drive(cfg, 8)
    second, _ = _drive(cfg, 8)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]


def test_grid_walks_every_point_once():
    cfg = load_config(
        [
            "sampler=grid",
            "space.learning_rate=choice(0.001,0.01)",
            "space.kernel_regularizer_strength=0.0001",
            "space.filters=choice(8,16)",
            "n_trials=1000",
            "baseline=false",  # the baseline would be one trial more, beside the grid
        ]
    )
    study, _ = _drive(cfg, cfg.n_trials, input_shape=(8, 8, 1))
    points = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(points) == cfg.n_trials == 2 * 2 * 2 * 2 * 2


CONDITIONAL_GRID = [
    "space.kernel_regularizer=choice(none,l2)",  # its strength is active only with l2
    "space.kernel_regularizer_strength=choice(0.0001,0.001)",
    "space.filters=choice(8,16)",
    "space.kernel_size=3",
    "space.padding=same",
    "space.dilation_rate=1",
    "space.learning_rate=0.01",
    "n_trials=1000",
]


@pytest.mark.parametrize("sampler", [s for s, e in SAMPLERS.items() if e.discrete])
def test_a_grid_on_a_conditional_space_tries_each_active_point_once_then_stops(sampler):
    cfg = load_config([f"sampler={sampler}", "baseline=false", *CONDITIONAL_GRID])  # the grid alone: no baseline trial beside it
    assert cfg.n_trials == 2 * (1 + 2)  # filters x (none, or l2 with either strength)
    study, _ = _drive(cfg, cfg.n_trials, input_shape=(8, 8, 1))
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(points)) == len(points) == cfg.n_trials, points


def test_tpe_learns_to_avoid_infeasible_trials():
    # 'valid' with kernel 5 and dilation 2 needs a 9x9 input: on 8x8 images half this space is infeasible.
    cfg = load_config(
        ["space.padding=choice(valid,same)", "space.kernel_size=5", "space.dilation_rate=2", "sampler.n_startup_trials=10"]
    )
    _, infeasible = _drive(cfg, 60, input_shape=(8, 8, 1))
    early = sum(1 for n in infeasible if n < 10) / 10
    late = sum(1 for n in infeasible if n >= 30) / 30
    assert late < early / 2, (early, late)
