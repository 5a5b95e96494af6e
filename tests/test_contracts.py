"""Contract suites, one per extension point (as Optuna's `optuna/testing/pytest_samplers.py`): every
option registered in `sweeps.registry` goes through the same checks, read from the registry at
collection time, so a new entry is tested without touching this file. An option that cannot run
here is a visible skip with its reason, never left out of the parametrisation.

The schedulers' real-sweep half (a trial a scheduler stops is PRUNED in Optuna and KILLED in
MLflow; one that never stops trials prunes none) is `tests/schedulers/test_schedulers_e2e.py`, parametrised
from the same registry."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from models.plan import InfeasibleModel, plan_conv2d
from sweeps import registry
from sweeps.config.compose import CONF_DIR
from sweeps.config.settings import SamplerSettings, SchedulerSettings
from sweeps.config.validation import load_config
from sweeps.space import define_by_run, resolve_params

optuna.logging.set_verbosity(optuna.logging.ERROR)

GROUPS = {"sampler": registry.SAMPLERS, "scheduler": registry.SCHEDULERS, "dataset": registry.DATASETS}


# ---------------------------------------------------------------- every registry: one entry, one YAML


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_registered_option_has_one_yaml_named_after_it_and_each_yaml_one_entry(group):
    yamls = {p.stem: yaml.safe_load(p.read_text()) for p in (CONF_DIR / group).glob("*.yaml")}
    assert set(yamls) == set(GROUPS[group]), f"conf/{group}/ and sweeps.registry disagree"
    for name, conf in yamls.items():
        assert conf["name"] == name, f"conf/{group}/{name}.yaml says name: {conf['name']}"


@pytest.mark.parametrize("group", ["sampler", "scheduler"])
def test_each_setting_an_option_reads_has_its_default_in_the_yaml_only(group):
    """One source for a default: the YAML users read and override; the code holds none."""
    settings = {"sampler": SamplerSettings, "scheduler": SchedulerSettings}[group]
    code_defaults = {f.name: f.default for f in fields(settings)}
    for name, entry in GROUPS[group].items():
        conf = yaml.safe_load((CONF_DIR / group / f"{name}.yaml").read_text())
        for key in entry.settings:
            assert conf.get(key) is not None, f"conf/{group}/{name}.yaml lacks {key}, which {name} reads"
            assert code_defaults[key] is None, f"{settings.__name__}.{key} repeats a default that conf/ holds"
        if group == "sampler" and entry.requires and importlib.util.find_spec(entry.requires) is None:
            continue  # cannot be validated here (the sampler suites below skip it, saying why)
        cfg = _sampler_config(name) if group == "sampler" else load_config([f"{group}={name}"])
        got = getattr(cfg, group)
        assert {k: getattr(got, k) for k in entry.settings} == {k: conf[k] for k in entry.settings}


def test_help_lists_every_registered_option(capsys):
    from sweeps.cli import main

    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        for registered in GROUPS.values():
            assert all(name in text for name in registered), (argv, text[-600:])


def test_docs_tables_are_the_registries():
    """docs/extensions.md is rendered from sweeps.registry: `python -m sweeps.registry > docs/extensions.md`."""
    assert (CONF_DIR.parent / "docs" / "extensions.md").read_text() == registry.render_docs()


def test_readme_names_every_registered_option_in_its_group_row():
    readme = (CONF_DIR.parent / "README.md").read_text()
    for group, registered in GROUPS.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{group}/` |"))
        assert all(f"`{name}`" in row for name in registered), (group, row)


# ---------------------------------------------------------------- samplers


def _sampler_space(name: str) -> list[str]:
    """A conditional space the sampler can take: for a discrete one, choices only, where
    kernel_regularizer_strength exists only when kernel_regularizer is not none."""
    if not registry.SAMPLERS[name].discrete:
        return ["space=conv2d"]
    return [
        "space.kernel_regularizer=choice(none,l2)",
        "space.kernel_regularizer_strength=choice(0.0001,0.001)",
        "space.learning_rate=choice(0.001,0.01)",
        "space.padding=choice(valid,same)",
    ]


def _sampler_config(name: str, *extra: str):
    entry = registry.SAMPLERS[name]
    if entry.requires and importlib.util.find_spec(entry.requires) is None:
        pytest.skip(f"sampler={name} needs {entry.package or entry.requires}, not installed here ({entry.install})")
    return load_config([f"sampler={name}", *_sampler_space(name), *extra])


def _drive(cfg, n_trials: int, seed: int | None = None, input_shape=(8, 8, 1), fail_every: int = 0, directions=None):
    """Ask/tell as the runner does: infeasible -> PRUNED with no value, every `fail_every`-th
    trial FAIL (a crashed trial), else the model's size (and its depth, for two objectives)."""
    from sweeps.samplers.factories import make_sampler

    sampler = make_sampler(cfg.sampler, cfg.seed if seed is None else seed)
    study = optuna.create_study(sampler=sampler, directions=directions or ["minimize"])
    suggest = define_by_run(cfg.space, cfg.model)
    for _ in range(n_trials):
        trial = study.ask()
        suggest(trial)
        params = resolve_params(cfg.model, cfg.space, trial.params)
        if fail_every and trial.number % fail_every == fail_every - 1:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        try:
            plan = plan_conv2d(params, input_shape, 10)
        except InfeasibleModel:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        values = [float(plan.params), float(len(trial.params))][: len(study.directions)]
        study.tell(trial, values if len(values) > 1 else values[0])
    return study


@pytest.mark.parametrize("name", list(registry.SAMPLERS))
def test_sampler_same_seed_same_proposals_other_seed_other_proposals(name):
    cfg = _sampler_config(name)
    first, second = _drive(cfg, 10), _drive(cfg, 10)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    other = _drive(cfg, 10, seed=cfg.seed + 1)
    assert [t.params for t in other.trials] != [t.params for t in first.trials]


@pytest.mark.parametrize("name", list(registry.SAMPLERS))
def test_sampler_takes_both_sides_of_a_condition_within_each_distribution(name):
    """What a sampler decides on a conditional space: it proposes both sides of some condition (a
    parameter present in some trials, absent from others), and every value it proposes lies in its
    parameter's distribution. (That a trial holds only active params is define-by-run's doing,
    whatever the sampler: space.DefineByRun, tested in tests/test_space.py.)"""
    cfg = _sampler_config(name)
    study = _drive(cfg, 12)
    both = {
        k for k in cfg.space.searched if any(k in t.params for t in study.trials) and any(k not in t.params for t in study.trials)
    }
    assert both, [t.params for t in study.trials]
    for trial in study.trials:
        for key, value in trial.params.items():
            dist = cfg.space.searched[key]
            assert dist._contains(dist.to_internal_repr(value)), (key, value, dist)


@pytest.mark.parametrize("name", list(registry.SAMPLERS))
def test_sampler_goes_on_after_infeasible_and_failed_trials(name):
    # 'valid' padding with kernel 5 and dilation 2 needs a 9x9 input: on 8x8 images part of the space is infeasible
    cfg = _sampler_config(name, "space.kernel_size=5", "space.dilation_rate=2")
    study = _drive(cfg, 12, fail_every=3)
    states = [t.state for t in study.trials]
    assert len(study.trials) == 12 and optuna.trial.TrialState.FAIL in states
    assert optuna.trial.TrialState.PRUNED in states and optuna.trial.TrialState.COMPLETE in states, states


@pytest.mark.parametrize("name", list(registry.SAMPLERS))
def test_sampler_handles_several_objectives_or_is_refused_for_them(name):
    entry = registry.SAMPLERS[name]
    if not entry.multi_objective:
        from sweeps.core.errors import ConfigError

        with pytest.raises(ConfigError, match="one objective only"):
            load_config([f"sampler={name}", "objectives=[val_accuracy:max,params:min]"])
        return
    cfg = _sampler_config(name, "objectives=[val_accuracy:max,params:min]")
    study = _drive(cfg, 8, directions=["minimize", "minimize"])
    assert len(study.best_trials) >= 1


# ---------------------------------------------------------------- schedulers


@pytest.mark.parametrize("name", list(registry.SCHEDULERS))
def test_scheduler_builds_and_checkpoints_where_it_declares_it_stops(name):
    from ray.tune.schedulers import TrialScheduler

    from sweeps.schedulers.builtin import make_scheduler, pause_epochs, stop_epochs

    entry = registry.SCHEDULERS[name]
    cfg = load_config([f"scheduler={name}", "max_epochs=12"])
    assert isinstance(make_scheduler(cfg), TrialScheduler)
    stops = stop_epochs(cfg)
    assert max(stops) == cfg.max_epochs  # the last epoch always keeps the best weights
    # A scheduler that stops trials early must say where (a checkpoint is written there); one that
    # never does writes only at the end, whatever Tune class it builds (FIFO-derived or not).
    assert (len(stops) > 1) == entry.stops_early, (name, sorted(stops))
    if entry.stops_early:  # a paused trial may be stopped there instead (PBT stops none: it clones at its pauses)
        assert pause_epochs(cfg) <= stops


# ---------------------------------------------------------------- datasets


def _npz(root: Path) -> str:
    rng = np.random.default_rng(0)
    path = root / "sample.npz"
    np.savez(path, x_train=rng.integers(0, 256, (60, 12, 12), dtype=np.uint8), y_train=np.arange(60) % 3)
    return str(path)


def _folder(root: Path) -> str:
    from tests.image_folders import digit_folder

    return str(digit_folder(root / "digits", limit=60))


# What a dataset that reads the user's file or folder is given here; a new one without a maker is a visible skip.
SAMPLE_INPUTS = {"npz": _npz, "folder": _folder}


def _keras_cache(name: str) -> bool:
    return any((Path.home() / ".keras" / "datasets").glob(f"{name}*"))


@pytest.mark.parametrize("name", list(registry.DATASETS))
def test_dataset_loads_consistent_shapes_and_a_stable_digest(name, tmp_path):
    from sweeps.data.datasets import input_facts, load_dataset

    entry = registry.DATASETS[name]
    if entry.needs == "network" and not _keras_cache(name):
        pytest.skip(f"dataset={name} downloads through keras.datasets; no network here and no copy in ~/.keras/datasets")
    path = None
    if entry.needs == "path":
        if name not in SAMPLE_INPUTS:
            pytest.skip(f"dataset={name} reads the user's files; tests/test_contracts.py SAMPLE_INPUTS has no sample for it")
        path = SAMPLE_INPUTS[name](tmp_path)
    conf = yaml.safe_load((CONF_DIR / "dataset" / f"{name}.yaml").read_text())
    options = {k: v for k, v in conf.items() if k not in ("name", "path", "val_fraction", "limit", "defaults")}
    args = dict(path=path, val_fraction=conf["val_fraction"], limit=40, options=options, output_dir=tmp_path / "out")
    first, again = load_dataset(name, seed=0, **args), load_dataset(name, seed=0, **args)
    # What space=auto reads without loading (sweeps.data.datasets.input_facts) is what the loader gives.
    facts = input_facts(name, path, conf["val_fraction"], 40, 0, options)
    assert (facts.shape, facts.classes, facts.train_images) == (first.input_shape, first.num_classes, len(first.x_train))
    assert first.digest == again.digest, "two loads of the same data and settings disagree"
    assert len(first.digest) == 32 and int(first.digest, 16) >= 0  # BLAKE2b-128, hex
    assert first.name == name and first.num_classes >= 2
    if first.stream is None:
        for x, y in ((first.x_train, first.y_train), (first.x_val, first.y_val)):
            assert x.ndim == 4 and x.dtype == np.float32 and x.shape[1:] == first.input_shape and len(x) == len(y)
            assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
            assert y.dtype == np.int64 and 0 <= int(y.min()) and int(y.max()) < first.num_classes
        assert len(first.x_train) + len(first.x_val) == 40
        np.testing.assert_array_equal(first.x_val, again.x_val)
    if first.class_names:
        assert len(first.class_names) == first.num_classes
    assert first.summary()["dataset.digest"] == first.digest


# ---------------------------------------------------------------- adding an option: one YAML + one entry


def throwaway_dataset(path):
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (40, 6, 6), dtype=np.uint8), np.arange(40) % 2, None, None, "tests.throwaway"


def test_an_option_is_one_yaml_file_and_one_registry_entry(tmp_path, monkeypatch, capsys):
    """A sampler, a scheduler and a dataset added the documented way, in a copy of conf/, reach
    validation, --help, the factories and the loaders with no other edit."""
    from ray.tune.schedulers import MedianStoppingRule

    from sweeps.cli import main
    from sweeps.data.datasets import load_dataset
    from sweeps.samplers.factories import make_sampler
    from sweeps.schedulers.builtin import make_scheduler, stop_epochs

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "sampler" / "throwaway.yaml").write_text("name: throwaway\nn_startup_trials: 3\n")
    (conf / "scheduler" / "throwaway.yaml").write_text("name: throwaway\ngrace_period: 2\nmin_samples: 2\n")
    (conf / "dataset" / "throwaway.yaml").write_text("name: throwaway\npath: null\nval_fraction: 0.25\nlimit: null\n")
    module = "tests.test_contracts"
    # an Optuna sampler class as it is: no factory to write
    monkeypatch.setitem(
        registry.SAMPLERS, "throwaway", registry.Sampler("optuna.samplers:TPESampler", "TPE", settings=("n_startup_trials",))
    )
    monkeypatch.setitem(
        registry.SCHEDULERS,
        "throwaway",
        registry.Scheduler(
            "sweeps.schedulers.builtin:median",
            "median",
            settings=("grace_period", "min_samples"),
            stops_early=True,
            stop_epochs="sweeps.schedulers.builtin:from_grace",
        ),
    )
    monkeypatch.setitem(registry.DATASETS, "throwaway", registry.Dataset(f"{module}:throwaway_dataset", "random"))

    cfg = load_config(["sampler=throwaway", "scheduler=throwaway", "dataset=throwaway", "max_epochs=4"], config_dir=conf)
    assert (cfg.sampler.n_startup_trials, cfg.scheduler.grace_period) == (3, 2)  # from the YAML
    assert make_sampler(cfg.sampler, 0)._n_startup_trials == 3
    assert isinstance(make_scheduler(cfg), MedianStoppingRule) and stop_epochs(cfg) == {2, 3, 4}
    data = load_dataset(cfg.dataset.name, cfg.dataset.path, cfg.dataset.val_fraction, seed=0)
    assert (data.num_classes, data.input_shape, len(data.x_val)) == (2, (6, 6, 1), 10)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "throwaway" in capsys.readouterr().out


def test_an_unregistered_name_is_one_clear_error_before_anything_runs():
    from sweeps.core.errors import ConfigError

    for key in ("sampler.name", "scheduler.name", "dataset.name"):
        with pytest.raises(ConfigError) as info:
            load_config([f"{key}=nosuch"])
        assert info.value.key == key and "nosuch" in info.value.problem, info.value


# ---------------------------------------------------------------- tracking backends


@pytest.mark.parametrize("scheme", list(registry.TRACKING_BACKENDS))
def test_each_tracking_backend_is_accepted_and_known_by_its_scheme(scheme):
    backend = registry.TRACKING_BACKENDS[scheme]
    cfg = load_config([f"tracking.uri={backend.example}"])
    assert cfg.tracking.uri == backend.example and registry.tracking_backend(cfg.tracking.uri) is backend


@pytest.mark.parametrize("uri", ["mlruns", "/tmp/mlruns", "ftp://host/store", "s3://bucket/store"])
def test_a_tracking_uri_of_no_registered_backend_is_one_clear_error(uri):
    from sweeps.core.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config([f"tracking.uri={uri}"])
    assert info.value.key == "tracking.uri" and "sqlite:////abs/mlflow.db" in info.value.fix
