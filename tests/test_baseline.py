"""Your model first: the configured model as a point of the space (pure tables), and how Optuna
records it when some of its values lie outside the space."""

import optuna
import pytest

from sweeps.space import BASELINE_ATTR, OUTSIDE_ATTR, baseline_point, define_by_run, parse_space

MODEL = {
    "blocks": 2,
    "filters": 32,
    "filters_growth": 2,
    "kernel_size": 5,
    "padding": "same",
    "kernel_regularizer": "l2",
    "kernel_regularizer_strength": 1e-4,
    "kernel_constraint": "none",
    "kernel_constraint_value": 3.0,
    "learning_rate": 1e-3,
    "use_bias": True,
}


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        # every searched value from the model, none from the space
        (
            {"filters": "choice(16, 32, 64)", "learning_rate": "tag(log, interval(1e-4, 1e-2))"},
            {"filters": 32, "learning_rate": 1e-3},
            {},
        ),
        # the article's 5x5 kernel against the small space's choice(1, 3): run as the user's, recorded outside
        ({"kernel_size": "choice(1, 3)", "filters": "choice(16, 32)"}, {"filters": 32}, {"kernel_size": 5}),
        # a range too: 1e-3 is below interval(1e-2, 1e-1)
        ({"learning_rate": "interval(0.01, 0.1)"}, {}, {"learning_rate": 1e-3}),
        # conditional: the strength is active (kernel_regularizer l2), the constraint value is not (none)
        (
            {"kernel_regularizer_strength": "tag(log, interval(1e-5, 1e-2))", "kernel_constraint_value": "interval(1.0, 5.0)"},
            {"kernel_regularizer_strength": 1e-4},
            {},
        ),
        # a space constant decides what is active: kernel_constraint fixed to max_norm activates its value
        (
            {"kernel_constraint": "max_norm", "kernel_constraint_value": "interval(1.0, 5.0)"},
            {"kernel_constraint_value": 3.0},
            {},
        ),
        # blockN.<arg> takes the shared value (filters by the growth rule); block3 is inactive with 2 blocks
        (
            {"block2.kernel_size": "choice(3, 5)", "block2.filters": "choice(32, 64)", "block3.kernel_size": "choice(3, 5)"},
            {"block2.kernel_size": 5, "block2.filters": 64},
            {},
        ),
        # a searched blocks count takes the model's, and blockN follows it
        ({"blocks": "int(interval(1, 3))", "block2.kernel_size": "choice(1, 3)"}, {"blocks": 2}, {"block2.kernel_size": 5}),
        # an int range: 32 filters above int(interval(8, 16))
        ({"filters": "int(interval(8, 16))", "use_bias": "choice(true, false)"}, {"use_bias": True}, {"filters": 32}),
    ],
)
def test_baseline_point(spec, inside, outside):
    point = baseline_point(MODEL, parse_space(spec, MODEL))
    assert point.inside == inside
    assert point.outside == outside
    assert len(point.notes) == len(outside)
    assert point.params == {**inside, **outside}


def test_outside_note_names_the_value_and_the_range():
    point = baseline_point(MODEL, parse_space({"kernel_size": "choice(1, 3)"}, MODEL))
    assert point.notes == ("kernel_size=5 is outside the space's choice(1, 3)",)


def test_optuna_refuses_an_outside_categorical_but_takes_an_outside_range_with_a_warning():
    """Why the baseline enqueues only its in-space values (Optuna 5, as installed)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study()
    study.enqueue_trial({"kernel_size": 5, "learning_rate": 0.5})
    trial = study.ask()
    with pytest.warns(UserWarning, match="out of range"):
        assert trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True) == 0.5
    with pytest.raises(ValueError, match="not in"):
        trial.suggest_categorical("kernel_size", [1, 3])


def test_the_baseline_trial_runs_the_model_and_records_what_the_space_cannot_hold():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = parse_space(
        {"kernel_size": "choice(1, 3)", "filters": "choice(16, 32, 64)", "learning_rate": "interval(1e-4, 1e-2)"}, MODEL
    )
    point = baseline_point(MODEL, space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(point.inside, user_attrs=point.user_attrs())
    suggest = define_by_run(space, MODEL)
    first = study.ask()
    extra = suggest(first)
    assert extra == {"kernel_size": 5}  # added to the trial's config by Ray's define-by-run wrapper
    assert first.params == {"filters": 32, "learning_rate": 1e-3}  # inside, against the space's distributions
    assert first.user_attrs[BASELINE_ATTR] is True and first.user_attrs[OUTSIDE_ATTR] == {"kernel_size": 5}
    study.tell(first, 0.9)
    second = study.ask()
    assert suggest(second) is None and second.params["kernel_size"] in (1, 3)  # the others come from the space


# ---------------------------------------------------------------- champion against baseline: the words

from tracking.note import RefitStory, Versus, refit_lines, versus_lines  # noqa: E402

V = Versus("val_accuracy", "max", 0, "COMPLETE", 0.95, 7, 0.965, baseline_test=0.955, champion_test=0.96)


@pytest.mark.parametrize(
    ("versus", "expected"),
    [
        (
            V,
            [
                "Champion #7 against the baseline (your configured model, trial #0): val_accuracy 0.9650 against 0.9500,"
                " gain +0.0150 (better)",
                "test_accuracy (held-out split) 0.9600 against 0.9550, gain +0.0050 (better)",
            ],
        ),
        (  # better on validation, worse on test: said as it is
            Versus("val_accuracy", "max", 0, "COMPLETE", 0.95, 3, 0.96, baseline_test=0.96, champion_test=0.94),
            [
                "Champion #3 against the baseline (your configured model, trial #0): val_accuracy 0.9600 against 0.9500,"
                " gain +0.0100 (better)",
                "test_accuracy (held-out split) 0.9400 against 0.9600, gain -0.0200 (worse)",
            ],
        ),
        (  # a min objective: lower is the gain
            Versus("val_loss", "min", 0, "COMPLETE", 0.30, 4, 0.20, has_test=False),
            [
                "Champion #4 against the baseline (your configured model, trial #0): val_loss 0.2000 against 0.3000,"
                " gain -0.1000 (better: lower is better)",
                "No test split: the comparison is on the validation split only",
            ],
        ),
        (
            Versus("val_accuracy", "max", 0, "COMPLETE", 0.97, 0, 0.97, baseline_test=0.96, champion_test=0.96),
            [
                "The best trial is the baseline (your configured model, trial #0): val_accuracy 0.9700; the search found no"
                " better model than yours",
                "Its test_accuracy (held-out split): 0.9600",
            ],
        ),
        (
            Versus(
                "val_accuracy", "max", 0, "INFEASIBLE", None, 2, 0.9, baseline_detail="block 1: strides=2 with dilation_rate=2"
            ),
            [
                "Against the baseline (your configured model, trial #0): no comparison, it has no val_accuracy"
                " (infeasible: block 1: strides=2 with dilation_rate=2)"
            ],
        ),
        (
            Versus(
                "val_accuracy",
                "max",
                0,
                "PRUNED",
                0.9,
                5,
                0.95,
                baseline_test=0.9,
                champion_test=0.95,
                baseline_detail="at epoch 2 by the scheduler",
                outside=("kernel_size=5 is outside the space's choice(1, 3)",),
            ),
            [
                "Champion #5 against the baseline (your configured model, trial #0): val_accuracy 0.9500 against 0.9000"
                " (stopped early: at epoch 2 by the scheduler), gain +0.0500 (better)",
                "test_accuracy (held-out split) 0.9500 against 0.9000, gain +0.0500 (better)",
                "The baseline ran as configured, outside the space: kernel_size=5 is outside the space's choice(1, 3)",
            ],
        ),
    ],
)
def test_versus_lines(versus, expected):
    assert versus_lines(versus) == expected


@pytest.mark.parametrize(
    ("refit", "expected"),
    [
        (
            RefitStory(4, 1617, 0.97, 0.96, "models:/digits@champion (version 1)"),
            [
                "Refit: the champion's params trained on train + validation (1617 images) for its best epoch count (4),"
                " registered as models:/digits@champion (version 1)",
                "Refit test_accuracy 0.9700 against the champion's own checkpoint 0.9600, gain +0.0100 (better)",
            ],
        ),
        (
            RefitStory(2, 100, None, None, "models:/m@champion (version 3)"),
            [
                "Refit: the champion's params trained on train + validation (100 images) for its best epoch count (2),"
                " registered as models:/m@champion (version 3)",
                "The refit model was not test-scored: the dataset has no test split",
            ],
        ),
        (RefitStory(skipped="refit=false"), ["Refit: none (refit=false)"]),
    ],
)
def test_refit_lines(refit, expected):
    assert refit_lines(refit) == expected


def test_the_note_states_the_champion_against_the_baseline_and_the_refit():
    from dataclasses import replace

    from tests.commands.test_ui_story import STORY
    from tracking.note import sweep_note

    text = sweep_note(replace(STORY, versus=V, refit=RefitStory(4, 1617, 0.97, 0.96, "models:/d@champion (version 1)")))
    assert "**Against your model:**" in text
    assert f"- {versus_lines(V)[0]}" in text.splitlines()
    assert "- Refit test_accuracy 0.9700 against the champion's own checkpoint 0.9600, gain +0.0100 (better)" in text.splitlines()
