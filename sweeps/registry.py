"""The extension points: one registry each for samplers, schedulers, datasets and tracking backends.

As Ray Tune keeps `SCHEDULER_IMPORT` and `create_scheduler` (`ray/tune/schedulers/__init__.py`),
each registry maps a name to the import path of its factory, imported only when that option is
built: config validation, `--help`, the docs tables and the contract tests read names and metadata
from here without importing Optuna, Ray, Keras or MLflow (Ray still enters only through
`sweeps/schedulers/`, where the scheduler factories live).

An option's default values live in its YAML (`conf/<group>/<name>.yaml`, what users read and
override), never here or in the code: an entry names the settings it reads, and validation takes
each from the composed config. Adding an option is one entry here plus one YAML file, e.g.

    SAMPLERS["tpe_plain"] = Sampler("optuna.samplers:TPESampler", "Optuna's TPESampler", settings=("n_startup_trials",))
    conf/sampler/tpe_plain.yaml:  name: tpe_plain
                                  n_startup_trials: 10
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    target: str  # "module:function": the factory, imported when the option is built
    summary: str  # one line for --help and docs/

    def load(self) -> Callable[..., Any]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Sampler(Entry):
    """Factory: (SamplerSettings, seed) -> optuna.samplers.BaseSampler, seeded explicitly; or an
    Optuna sampler class, built as cls(seed=seed, <each of `settings`>=<its value>)."""

    settings: tuple[str, ...] = ()  # the `sampler.*` keys it reads (each set in its YAML)
    multi_objective: bool = True  # False: refused for objectives=[a,b]
    discrete: bool = False  # needs a space of choices only; n_trials is capped at the number of points
    requires: str | None = None  # a module it imports that is an optional extra
    package: str = ""  # that module's package, as users know it
    install: str = ""  # how to get it


@dataclass(frozen=True)
class Scheduler(Entry):
    """Factory (in sweeps.schedulers, beside the door to Ray): SweepConfig -> a Tune TrialScheduler.

    `stops_early` is declared, never inferred from the class: Tune's HyperBand and median stopping
    rule derive from FIFOScheduler and still stop trials. Where it may stop or pause a trial a
    checkpoint is written: `stop_epochs` / `pause_epochs` name pure functions SweepConfig -> epochs."""

    settings: tuple[str, ...] = ()  # the `scheduler.*` keys it reads (each set in its YAML)
    stops_early: bool = False  # may end a trial before max_epochs: PRUNED in Optuna, KILLED in MLflow
    stop_epochs: str | None = None  # "module:function": epochs after which it may stop a trial
    pause_epochs: str | None = None  # "module:function": epochs after which it may pause one (resumed later)

    def epochs(self, which: str, cfg: Any) -> frozenset[int]:
        target = self.stop_epochs if which == "stop" else self.pause_epochs
        if target is None or (which == "stop" and not self.stops_early):
            return frozenset()
        return Entry(target, "").load()(cfg)


@dataclass(frozen=True)
class Dataset(Entry):
    """Factory: with `arrays`, path -> raw (x_train, y_train, x_test, y_test, source), which
    `sweeps.data.datasets.load_dataset` checks, scales and splits like every array dataset; without,
    a whole loader (path, val_fraction, limit, seed, options, output_dir) -> Dataset."""

    arrays: bool = True
    needs: str = "nothing"  # "nothing" (embedded), "network" (downloaded once), "path" (the user's file or folder)
    # "module:function": (path, options) -> sweeps.data.datasets.InputFacts (input shape, classes,
    # training images) read cheaply, for space=auto; None: the dataset is loaded to learn them.
    facts: str | None = None


@dataclass(frozen=True)
class TrackingBackend:
    """An MLflow tracking store, by the scheme of `tracking.uri` (null: the local sqlite file)."""

    summary: str
    serves_ui: bool  # a server shows its own UI; a store on disk or a database needs `sweeps ui`
    example: str


SAMPLERS: dict[str, Sampler] = {
    "tpe": Sampler(
        "sweeps.samplers.factories:tpe",
        "Optuna's TPESampler (multivariate, group): models conditional subspaces jointly",
        settings=("n_startup_trials", "history"),
    ),
    "random": Sampler("sweeps.samplers.factories:random", "Optuna's RandomSampler"),
    "grid": Sampler(
        "sweeps.samplers.factories:grid", "Optuna's GridSampler: every point of a space of choices once", discrete=True
    ),
    "cmaes": Sampler(
        "sweeps.samplers.factories:cmaes",
        "Optuna's CmaEsSampler: continuous and integer parameters; one objective",
        settings=("n_startup_trials",),
        multi_objective=False,
    ),
    "gp": Sampler(
        "sweeps.samplers.factories:gp",
        "Optuna's GPSampler (Gaussian process)",
        settings=("n_startup_trials",),
        requires="torch",
        package="PyTorch",
        install="pip install -e '.[gp]' (CPU torch)",
    ),
    "qmc": Sampler("sweeps.samplers.factories:qmc", "Optuna's QMCSampler: scrambled Sobol points"),
    "nsga2": Sampler(
        "sweeps.samplers.factories:nsga2",
        "Optuna's NSGAIISampler: genetic search for several objectives",
        settings=("population_size",),
    ),
    "bruteforce": Sampler(
        "sweeps.samplers.factories:bruteforce",
        "Optuna's BruteForceSampler: every point of a space of choices, inactive branches skipped",
        discrete=True,
    ),
}

SCHEDULERS: dict[str, Scheduler] = {
    "asha": Scheduler(
        "sweeps.schedulers.builtin:asha",
        "Ray Tune's ASHA: stops weak trials at rungs grace_period * reduction_factor^k",
        settings=("grace_period", "reduction_factor"),
        stops_early=True,
        stop_epochs="sweeps.schedulers.builtin:asha_rungs",
    ),
    "hyperband": Scheduler(
        "sweeps.schedulers.builtin:hyperband",
        "Ray Tune's HyperBand (synchronous): brackets pause trials at milestones, keep the best 1/reduction_factor",
        settings=("reduction_factor",),
        stops_early=True,
        stop_epochs="sweeps.schedulers.builtin:hyperband_pauses",
        pause_epochs="sweeps.schedulers.builtin:hyperband_pauses",
    ),
    "median": Scheduler(
        "sweeps.schedulers.builtin:median",
        "Ray Tune's median stopping rule: stops a trial whose best is below the median of the others' running means",
        settings=("grace_period", "min_samples"),
        stops_early=True,
        stop_epochs="sweeps.schedulers.builtin:from_grace",
    ),
    "none": Scheduler("sweeps.schedulers.builtin:fifo", "every trial trains max_epochs (FIFO)"),
    "pbt": Scheduler(
        "sweeps.schedulers.pbt:pbt",
        "Ray Tune's population-based training: the worst trials clone the best's checkpoints and explore continuous params"
        " (its own random population: Tune's PBT refuses a searcher)",
        settings=("perturbation_interval", "quantile_fraction"),
        # it stops none: a trial it exploits goes on from another's checkpoint; it may pause one at each step
        pause_epochs="sweeps.schedulers.pbt:pbt_steps",
    ),
}

DATASETS: dict[str, Dataset] = {
    "digits": Dataset(
        "sweeps.data.datasets:load_digits",
        "scikit-learn's 1,797 real 8x8 handwritten digits (embedded)",
        facts="sweeps.data.datasets:digits_facts",
    ),
    "mnist": Dataset(
        "sweeps.data.datasets:load_mnist",
        "keras.datasets.mnist (or dataset.path=FILE.npz)",
        needs="network",
        facts="sweeps.data.datasets:mnist_facts",
    ),
    "fashion_mnist": Dataset(
        "sweeps.data.datasets:load_fashion_mnist",
        "keras.datasets.fashion_mnist (or dataset.path=FILE.npz)",
        needs="network",
        facts="sweeps.data.datasets:fashion_mnist_facts",
    ),
    "cifar10": Dataset(
        "sweeps.data.datasets:load_cifar10",
        "keras.datasets.cifar10 (or dataset.path=FILE.npz)",
        needs="network",
        facts="sweeps.data.datasets:cifar10_facts",
    ),
    "npz": Dataset(
        "sweeps.data.datasets:load_npz",
        "a local .npz with x_train, y_train (x_test, y_test)",
        needs="path",
        facts="sweeps.data.datasets:npz_facts",
    ),
    "folder": Dataset(
        "sweeps.data.datasets:load_folder",
        "a folder of class subfolders of images, streamed when large",
        arrays=False,
        needs="path",
        facts="sweeps.data.datasets:folder_facts",
    ),
}

# By the scheme of tracking.uri (a bare path is refused: write it as file:///abs/path).
TRACKING_BACKENDS: dict[str, TrackingBackend] = {
    "sqlite": TrackingBackend("a sqlite file (the default: OUTPUT_DIR/mlflow.db)", False, "sqlite:////abs/mlflow.db"),
    "http": TrackingBackend("an MLflow tracking server (python -m sweeps server)", True, "http://host:5000"),
    "https": TrackingBackend("an MLflow tracking server behind TLS", True, "https://mlflow.example.org"),
    "postgresql": TrackingBackend("a PostgreSQL database, written directly", False, "postgresql://user@host/db"),
    "mysql": TrackingBackend("a MySQL database, written directly", False, "mysql+pymysql://user@host/db"),
    "file": TrackingBackend("MLflow's file store, a folder (deprecated by MLflow 3: prefer sqlite)", False, "file:///abs/mlruns"),
}


def scheme(uri: str) -> str:
    """`postgresql+psycopg://...` -> postgresql: the registry key of a database or server URL."""
    return uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""


def tracking_backend(uri: str) -> TrackingBackend | None:
    return TRACKING_BACKENDS.get(scheme(uri))


def names(registry: Mapping[str, Any]) -> str:
    return ", ".join(registry)


def _table(key: str, registry: Mapping[str, Any], column: str, cell: Callable[[Any], str]) -> str:
    rows = [f"| `{key}` | what it is | {column} |", "| --- | --- | --- |"]
    rows += [f"| `{name}` | {entry.summary} | {cell(entry)} |" for name, entry in registry.items()]
    return "\n".join(rows)


def _settings(entry: Sampler | Scheduler) -> str:
    return ", ".join(f"`{key}`" for key in entry.settings)


def render_docs() -> str:
    """docs/extensions.md: the tables of every registry (`python -m sweeps.registry > docs/extensions.md`;
    tests/test_contracts.py holds the file equal to this)."""
    sampler_cell = lambda e: "; ".join(  # noqa: E731
        filter(None, [_settings(e), "discrete spaces only" if e.discrete else "", "" if e.multi_objective else "one objective"])
    )
    return "\n".join(
        [
            "# Extension points",
            "",
            "Generated from `sweeps/registry.py` by `python -m sweeps.registry > docs/extensions.md` (a test keeps",
            "it equal). Each option's default settings are in its YAML, `conf/<group>/<name>.yaml`. Adding one is",
            "an entry in `sweeps/registry.py` plus that YAML file; `tests/test_contracts.py` then runs it through",
            "its extension point's contract suite.",
            "",
            "## Samplers (`conf/sampler/`)",
            "",
            _table("sampler=", SAMPLERS, "settings (from its YAML)", sampler_cell),
            "",
            "## Schedulers (`conf/scheduler/`)",
            "",
            _table(
                "scheduler=",
                SCHEDULERS,
                "stops trials early; settings",
                lambda e: "; ".join(filter(None, ["yes" if e.stops_early else "no", _settings(e)])),
            ),
            "",
            "## Datasets (`conf/dataset/`)",
            "",
            _table(
                "dataset=",
                DATASETS,
                "needs",
                lambda e: {"nothing": "nothing (embedded)", "network": "a download, or dataset.path", "path": "dataset.path"}[
                    e.needs
                ],
            ),
            "",
            "## Tracking backends (`tracking.uri`, by scheme)",
            "",
            _table("scheme", TRACKING_BACKENDS, "example", lambda e: f"`{e.example}`"),
            "",
        ]
    )


if __name__ == "__main__":
    print(render_docs(), end="")
