"""Every config group composes; overrides work; bad settings name the field."""

from pathlib import Path

import pytest

from sweeps.config import CONF_DIR, ConfigError, load_config, split_space_overrides

GROUPS = ("dataset", "model", "space", "sampler", "scheduler", "resources", "tracking")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF_DIR / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_config_group_option_composes(group, option):
    overrides = [f"{group}={option}"]
    if (group, option) == ("dataset", "npz"):
        overrides.append("dataset.path=/tmp/some.npz")  # required (???) in that file
    cfg = load_config(overrides)
    assert cfg.resolved[group] is not None


def test_each_group_has_options():
    for group in GROUPS:
        assert any((CONF_DIR / group).glob("*.yaml")), group


def test_documented_override_line():
    cfg = load_config("space=conv2d n_trials=40 sampler=random scheduler=asha resources.cpus_per_trial=1".split())
    assert (cfg.n_trials, cfg.sampler.name, cfg.scheduler.name, cfg.resources.cpus_per_trial) == (40, "random", "asha", 1)
    assert "kernel_constraint" in cfg.space.searched


def test_defaults():
    cfg = load_config([])
    assert cfg.dataset.name == "digits" and cfg.metric == "val_accuracy" and cfg.mode == "max"
    assert cfg.name.startswith("sweep-")
    assert {"filters", "kernel_size", "padding", "dilation_rate", "kernel_regularizer_strength", "learning_rate"} <= set(cfg.space.searched)
    assert cfg.model["kernel_regularizer"] == "l2"  # the searched strength is an L2 strength


def test_space_entries_on_the_command_line_are_grammar_not_hydra_sweeps():
    cfg = load_config(["space.kernel_size=choice(1,3)", "space.block2.filters=choice(8,16)", "space.padding=valid"])
    assert list(cfg.space.searched["kernel_size"].choices) == [1, 3]
    assert "block2.filters" in cfg.space.searched
    assert cfg.space.fixed["padding"] == "valid"


def test_split_space_overrides_leaves_the_rest_to_hydra():
    rest, space = split_space_overrides(["n_trials=3", "space.filters=choice(8,16)", "+space.dropout=0.1"])
    assert rest == ["n_trials=3"]
    assert space == {"filters": "choice(8,16)", "dropout": 0.1}


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["n_trials=0"], "n_trials", "below 1"),
        (["n_trials=-3"], "n_trials", "below 1"),
        (["n_trials=many"], "n_trials", "whole number"),
        (["mode=up"], "mode", "not one of max, min"),
        (["metric=accuracy_top5"], "metric", "not one of"),
        (["max_epochs=0"], "max_epochs", "below 1"),
        (["sampler=bayes"], "override", "Could not find 'sampler/bayes'"),
        (["scheduler=hyperband"], "override", "Could not find"),
        (["n_trial=3"], "override", "Could not override 'n_trial'"),
        (["n_trials=="], "override", "Error parsing override"),
        (["name=has space"], "name", "not a usable sweep name"),
        (["scheduler.grace_period=50"], "scheduler.grace_period", "more than max_epochs"),
        (["resources.cpus_per_trial=0"], "resources.cpus_per_trial", "below"),
        (["space.kernel_size=int(interval(5,1))"], "space.kernel_size", "is empty"),
        (["space.kernel_sise=3"], "space.kernel_sise", "unknown parameter"),
        (["model.padding=causal"], "model.padding", "'causal'"),
        (["dataset.val_fraction=abc"], "dataset.val_fraction", "not a number"),
    ],
)
def test_bad_settings_name_the_field(overrides, key, words):
    with pytest.raises(ConfigError) as info:
        load_config(overrides)
    assert info.value.key == key
    assert words in str(info.value)
    assert info.value.fix


def test_output_dir_is_absolute(tmp_path: Path):
    cfg = load_config([f"output_dir={tmp_path}/out"])
    assert cfg.output_dir == (tmp_path / "out").resolve()
    assert cfg.sweep_dir.is_relative_to(cfg.output_dir)
