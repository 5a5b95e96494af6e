"""The product's TPE with a bounded history (sampler.history, sweeps/samplers/factories.py::_BoundedTPESampler):
which finished trials it keeps, that TPE never models more of them, that the trials TPE puts in
"below" are the unbounded TPE's, and that below the bound it is Optuna's TPE proposal for proposal."""

import math
from dataclasses import replace

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.samplers._tpe import sampler as tpe_module
from optuna.trial import TrialState, create_trial

from sweeps.config.validation import load_config
from sweeps.core.errors import ConfigError
from sweeps.samplers.factories import kept_trials, make_sampler

optuna.logging.set_verbosity(optuna.logging.ERROR)
SPACE = {
    "x": FloatDistribution(-5.0, 5.0),
    "y": FloatDistribution(1e-4, 1e-1, log=True),
    "c": CategoricalDistribution(["a", "b", "c"]),
}


def _trials(numbers):
    out = []
    for n in numbers:
        t = create_trial(value=float(n), params={"x": 0.0}, distributions={"x": SPACE["x"]})
        t.number = n
        out.append(t)
    return out


@pytest.mark.parametrize(
    ("finished", "best", "limit", "kept"),
    [
        ([0, 1, 2, 3], [], 10, [0, 1, 2, 3]),  # under the limit: all of them
        ([0, 1, 2, 3, 4, 5], [], 3, [3, 4, 5]),  # no best: the most recent
        ([0, 1, 2, 3, 4, 5], [0], 3, [0, 4, 5]),  # the best, then the most recent others
        ([0, 1, 2, 3, 4, 5], [5, 1], 3, [1, 4, 5]),  # a best that is also recent counts once
        ([0, 1, 2, 3, 4, 5], [0, 1, 2], 3, [0, 1, 2]),  # as many best as the limit: no recent
        ([0, 2, 5, 9], [2], 2, [2, 9]),  # gaps in the numbers (failed or running trials)
    ],
)
def test_kept_trials_are_the_best_and_the_most_recent(finished, best, limit, kept):
    by_number = {t.number: t for t in _trials(finished)}
    assert [t.number for t in kept_trials(list(by_number.values()), [by_number[n] for n in best], limit)] == kept


def _objective(p):
    return (p["x"] - 1.3) ** 2 + abs(math.log10(p["y"]) + 2.5) + {"a": 0.5, "b": 0.0, "c": 1.0}[p["c"]]


def _sampler(history, seed=0):
    settings = load_config(["sampler=tpe"]).sampler
    return make_sampler(replace(settings, history=history), seed)


def test_tpe_never_models_more_than_history_finished_trials_and_its_below_is_the_unbounded_one(monkeypatch):
    """A spy on Optuna's own TPESampler._sample (what the bounded sampler hands its study view to):
    at most `history` finished trials, every running one (the constant liar's), and the "below"
    trials TPE's split picks from them are those it would pick from the whole study. Trials finish
    out of order (four at a time, told in reverse), some pruned, as under Ray Tune with slots, and
    one runs from the start until trial 300, then finishes best of all."""
    history, seen = 250, []
    original = optuna.samplers.TPESampler._sample

    def spy(self, study, trial, search_space):
        given = study._get_trials(deepcopy=False, states=None)
        finished = [t for t in given if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        running = [t for t in given if t.state == TrialState.RUNNING]
        whole = getattr(study, "_study", study)  # the study behind the view (the study itself below the bound)
        everything = whole._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=False)
        below = tpe_module._split_trials(study, finished, tpe_module.default_gamma(len(finished)))[0]  # as TPE splits
        full_below = tpe_module._split_trials(study, everything, tpe_module.default_gamma(len(everything)))[0]
        all_running = whole._get_trials(deepcopy=False, states=(TrialState.RUNNING,), use_cache=False)
        current = {trial.number}  # TPE drops the trial being asked itself
        seen.append(
            (len(finished), len(everything), {t.number for t in running} - current, {t.number for t in all_running} - current)
        )
        assert [t.number for t in below] == [t.number for t in full_below]
        return original(self, study, trial, search_space)

    study = optuna.create_study(sampler=_sampler(history))
    monkeypatch.setattr(optuna.samplers.TPESampler, "_sample", spy)
    long_one = study.ask(SPACE)  # runs while 300 others finish, then finishes best of all
    while len(study.trials) < 340:
        batch = [study.ask(SPACE) for _ in range(4)]
        if len(study.trials) > 300 and long_one.number not in {t.number for t in study.get_trials(states=(TrialState.COMPLETE,))}:
            study.tell(long_one, -100.0)
        for trial in reversed(batch):
            if trial.number % 7 == 3:
                trial.report(_objective(trial.params) + 1.0, 1)
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, _objective(trial.params))
    bounded = [s for s in seen if s[1] > history]
    assert bounded, "the study never outgrew the history: the check would be empty"
    assert all(given <= history for given, *_ in seen)
    assert all(given == history for given, *_ in bounded)
    assert all(running == all_running for _, _, running, all_running in seen)
    assert any(running for _, _, running, _ in bounded), "no ask saw a running trial"
    assert long_one.number in {t.number for t in study.get_trials(states=(TrialState.COMPLETE,))}


def test_below_its_history_the_bounded_tpe_is_optunas_tpe():
    """Same seed, same proposals as Optuna's TPESampler with the product's settings, while the study
    is smaller than the history (the group search space is fed each trial once: nothing lost)."""

    def proposals(sampler):
        study = optuna.create_study(sampler=sampler)
        for _ in range(40):
            trial = study.ask(SPACE)
            study.tell(trial, _objective(trial.params))
        return [t.params for t in study.trials]

    plain = optuna.samplers.TPESampler(seed=3, n_startup_trials=5, multivariate=True, group=True)
    assert proposals(_sampler(250, seed=3)) == proposals(plain)


@pytest.mark.parametrize(
    ("override", "problem"), [("sampler.history=10", "below 250"), ("sampler.history=lots", "not a whole number")]
)
def test_a_bad_history_is_refused_naming_the_setting(override, problem):
    with pytest.raises(ConfigError) as info:
        load_config(["sampler=tpe", override])
    assert info.value.key == "sampler.history" and problem in info.value.problem
    assert "sampler.history" in info.value.fix


def test_the_default_history_comes_from_the_yaml():
    assert load_config(["sampler=tpe"]).sampler.history == 250
    assert make_sampler(load_config(["sampler=tpe", "sampler.history=400"]).sampler, 0)._history == 400


def test_the_benchmarks_objectives_have_their_stated_optimum():
    from benchmarks.tpe_history import _SHIFT, hartmann6, shifted_sphere, small_objective

    minimiser = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]
    assert hartmann6({f"x{i}": v for i, v in enumerate(minimiser)}) == pytest.approx(-3.32237, abs=1e-4)
    assert shifted_sphere({**{f"x{i}": c for i, c in enumerate(_SHIFT)}, "c0": "b", "c1": 32}) == 0.0
    best = {"learning_rate": 3e-3, "kernel_regularizer_strength": 1e-4, "filters": 64, "kernel_size": 3, "padding": "same"}
    assert small_objective({**best, "dilation_rate": 1}) == pytest.approx(0.9567, abs=1e-4)
    assert small_objective({**best, "dilation_rate": 2}) < small_objective({**best, "dilation_rate": 1})


def test_the_benchmark_writes_its_table(tmp_path):
    from benchmarks.tpe_history import run

    run((0, 250), (250,), n=12, seeds=1, trials=12, out=tmp_path)
    text = (tmp_path / "tpe_history.txt").read_text()
    assert "commit" in text and "load average" in text and "s CPU in all" in text
    assert "unbounded    #10" in text and "history=250  #10" in text and "Hartmann 6-D" in text


@pytest.mark.parametrize(("saved", "resumed"), [(None, 250), (400, 400)])
def test_a_sweep_saved_before_the_setting_existed_resumes_with_its_default(tmp_path, saved, resumed):
    """config.yaml of a sweep started before sampler.history was added has no such key: resume takes
    the YAML's default instead of refusing a setting the user cannot give (a resume may not change it)."""
    import yaml

    from sweeps.config.saved import load_saved_config

    raw = load_config(["sampler=tpe", "name=old", f"output_dir={tmp_path}"]).resolved
    raw["sampler"].pop("history")
    if saved is not None:
        raw["sampler"]["history"] = saved
    (tmp_path / "sweeps" / "old").mkdir(parents=True)
    (tmp_path / "sweeps" / "old" / "config.yaml").write_text(yaml.safe_dump(raw))
    assert load_saved_config("old", tmp_path, []).sampler.history == resumed


def test_the_bounded_tpe_samples_a_study_that_has_no_trial_yet():
    """A sample from a study with no trial at all, past the start-up trials (Optuna's own
    `test_constrained_sample_independent_zero_startup`): Optuna's TPE answers, so must ours."""
    settings = load_config(["sampler=tpe"]).sampler
    sampler = make_sampler(replace(settings, history=250, n_startup_trials=0), 0)
    study = optuna.create_study()
    trial = create_trial(state=TrialState.RUNNING)
    assert 1.0 <= sampler.sample_independent(study, trial, "x", FloatDistribution(1.0, 100.0)) <= 100.0
