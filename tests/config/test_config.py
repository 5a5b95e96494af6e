"""Every config group composes; overrides work; bad settings name the field."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

from sweeps.config.compose import CONF_DIR, split_space_overrides
from sweeps.config.validation import load_config
from sweeps.core.errors import ConfigError
from sweeps.registry import SAMPLERS
from tests.image_folders import photo_folder

# Keys of a group file that direct composition rather than set a value: Hydra's defaults list, and
# space=auto's `auto` (the space is derived from the data, sweeps/autospace.py).
DIRECTIVES = {"defaults", "auto"}
GROUPS = ("dataset", "model", "space", "sampler", "scheduler", "resources", "tracking")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF_DIR / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_config_group_option_composes(group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if (group, option) == ("dataset", "npz"):  # required (???) in that file; read by space=auto
        np.savez(tmp_path / "some.npz", x_train=np.zeros((10, 8, 8), np.uint8), y_train=np.arange(10) % 2)
        overrides.append(f"dataset.path={tmp_path / 'some.npz'}")
    if (group, option) == ("dataset", "folder"):
        overrides.append(f"dataset.path={photo_folder(tmp_path / 'photos', per_class=3)}")
    if group == "sampler" and SAMPLERS[option].discrete:  # grid, bruteforce: a space of choices
        overrides.append("space=vgg")
        overrides += ["space.dropout=choice(0.2,0.4)", "space.learning_rate=choice(0.001,0.01)"]
    if (group, option) == ("sampler", "gp") and importlib.util.find_spec("torch") is None:
        with pytest.raises(ConfigError, match=r"needs PyTorch.*pip install -e '\.\[gp\]'"):
            load_config(overrides)
        return
    cfg = load_config(overrides)
    # The option's own file is what composed: each of its settings, as written (interpolations, Hydra's
    # defaults list and the settings the overrides above set aside), is in the composed group.
    written = yaml.safe_load((CONF_DIR / group / f"{option}.yaml").read_text()) or {}
    overridden = {o.split("=", 1)[0].removeprefix(f"{group}.") for o in overrides}
    expected = {k: v for k, v in written.items() if k not in overridden | DIRECTIVES and "${" not in str(v)}
    if not expected:  # space=auto: a directive only; what composed is the space derived from the data
        assert group == "space" and cfg.space.searched, f"{group}/{option}.yaml sets nothing this check can compare"
    assert {k: cfg.resolved[group].get(k) for k in expected} == expected


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
    assert {"filters", "kernel_size", "padding", "dilation_rate", "kernel_regularizer_strength", "learning_rate"} <= set(
        cfg.space.searched
    )
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
        (["scheduler=bohb"], "override", "Could not find"),  # pbt exists now
        (["n_trial=3"], "n_trial", "unknown setting"),
        (["n_trials=="], "override", "Error parsing override"),
        (["name=has space"], "name", "not a usable sweep name"),
        (["scheduler.grace_period=50"], "scheduler.grace_period", "more than max_epochs"),
        (["resources.cpus_per_trial=0"], "resources.cpus_per_trial", "below"),
        (["space.kernel_size=int(interval(5,1))"], "space.kernel_size", "is empty"),
        (["space.kernel_sise=3"], "space.kernel_sise", "unknown parameter"),
        (["model.padding=causal"], "model.padding", "'causal'"),
        (["dataset.val_fraction=abc"], "dataset.val_fraction", "not a number"),
        (["sampler=grid"], "space.learning_rate", "continuous"),
        (["sampler=cmaes", "objectives=[val_accuracy:max,params:min]"], "sampler", "one objective only"),
        (["objectives=[params:min,val_accuracy:max]"], "objectives", "not measured per epoch"),
        (["objectives=[val_accuracy:up]"], "objectives", "metric:mode"),
        (["objectives=[val_accuracy:max,val_accuracy:max]"], "objectives", "listed twice"),
        (["objectives=val_accuracy"], "objectives", "not a list"),
        (["+space.max_params=-5"], "space.max_params", "not a positive number"),
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


def test_multi_objective_sets_the_first_objective_as_metric():
    cfg = load_config(["objectives=[val_loss:min,params:min]"])
    assert cfg.multi_objective and (cfg.metric, cfg.mode) == ("val_loss", "min")
    assert cfg.objectives == (("val_loss", "min"), ("params", "min"))


def test_grid_counts_points_and_caps_trials():
    cfg = load_config(
        [
            "sampler=grid",
            "n_trials=500",
            "space.kernel_regularizer_strength=choice(1e-4,1e-3)",
            "space.learning_rate=choice(1e-3,1e-2)",
        ]
    )
    # filters 3 x kernel 2 x padding 2 x dilation 2 x strength 2 x lr 2, and the baseline (your model, no grid point)
    assert cfg.n_trials == 96 + 1 and len(cfg.sampler.grid["filters"]) == 3
    fixed = ["space.kernel_regularizer_strength=0.0001", "space.learning_rate=0.001", "baseline=false"]
    assert load_config(["sampler=grid", "n_trials=500", *fixed]).n_trials == 3 * 2 * 2 * 2


def test_budgets_and_even_kernel_warning():
    cfg = load_config(["+space.max_params=50000", "space.kernel_size=choice(2,3)"])
    assert cfg.space.max_params == 50000
    assert any("even kernel sizes [2]" in w for w in cfg.space.warnings)


def test_docs_document_every_key_of_every_shipped_space():
    import yaml

    readme = (CONF_DIR.parent / "docs" / "spaces.md").read_text()
    for path in sorted((CONF_DIR / "space").glob("*.yaml")):
        section = readme.split(f"\n`{path.stem}` (", 1)[1].split("\n\n", 2)[1]
        documented = {line.split("|")[1].strip(" `") for line in section.splitlines() if line.startswith("| `")}
        assert set(yaml.safe_load(path.read_text())) == documented, path.stem
