"""Each heavy library enters through its one door: checked in a fresh interpreter per module.

The rules are per package (PACKAGE_RULES), with a few modules held to a stricter rule than their package
(MODULE_RULES); the modules are every module of the tree (found with pathlib), so a new module is checked
the day it is added, and a new package without a rule fails `test_the_rules_cover_every_package`.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("ray", "mlflow", "keras", "tensorflow", "optuna")
ROOT = Path(__file__).resolve().parent.parent
TOPS = ("sweeps", "models", "tracking")

# package -> heavy libraries its modules may pull in (and nothing else from HEAVY)
PACKAGE_RULES = {
    "sweeps": {"optuna"},  # cli, space (optuna's distributions), registry, the notebook API: see MODULE_RULES
    "sweeps.core": set(),  # pure shared facts
    "sweeps.config": {"optuna"},  # via the space's distributions
    "sweeps.samplers": {"optuna"},
    "sweeps.storage": {"optuna"},
    "sweeps.schedulers": {"ray", "optuna"},
    "sweeps.execution": {"ray", "optuna", "mlflow"},  # the door to Ray; its callbacks write MLflow through tracking
    "sweeps.worker": set(),  # TensorFlow, Keras and Ray load inside the trial, in the worker
    "sweeps.driver": {"optuna"},
    "sweeps.data": set(),
    "sweeps.commands": {"optuna"},
    "sweeps.testing": set(),
    "models": set(),
    "tracking": {"mlflow"},
}

# modules held to a stricter (or, for recovery, other) rule than their package's
MODULE_RULES = {
    "sweeps": set(),  # the notebook API: everything loads when a function runs
    "sweeps.registry": set(),  # names and import paths only: validation and --help import no heavy library
    "sweeps.autospace": set(),  # space=auto's rules: pure, validation imports it
    "sweeps.driver.recovery": {"optuna", "mlflow"},  # mends MLflow runs after an unclean stop
    "sweeps.driver.checkpoints": set(),
    "sweeps.driver.progress": set(),
    "sweeps.driver.testscore": set(),
    "sweeps.commands.predict": set(),
    "sweeps.commands.submit": set(),
    "models.conv2d": {"keras", "tensorflow"},
}


def _modules() -> list[str]:
    found = []
    for top in TOPS:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__main__":
                continue  # running it is the CLI, not an import
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def _packages() -> list[str]:
    return sorted({".".join(p.relative_to(ROOT).parent.parts) for top in TOPS for p in (ROOT / top).rglob("__init__.py")})


def _package_of(module: str) -> str:
    return module if module in _packages() else module.rpartition(".")[0]


def _allowed(module: str) -> set[str]:
    return MODULE_RULES[module] if module in MODULE_RULES else PACKAGE_RULES[_package_of(module)]


def test_the_rules_cover_every_package():
    packages, modules = set(_packages()), set(_modules())
    assert packages == set(PACKAGE_RULES), (
        f"packages without a rule: {sorted(packages - set(PACKAGE_RULES))}; rules without a package: {sorted(set(PACKAGE_RULES) - packages)}"
    )
    assert set(MODULE_RULES) <= modules, f"rules for modules that do not exist: {sorted(set(MODULE_RULES) - modules)}"
    assert {"sweeps.storage.studystore", "sweeps.core.writebehind", "sweeps.core.sqlite", "sweeps.driver.warmstart"} <= modules


@pytest.mark.parametrize("module", _modules())
def test_module_imports_only_its_doors(module):
    code = f"import sys, json; import {module}; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert loaded <= _allowed(module), f"{module} imports {sorted(loaded - _allowed(module))}"


# Where each library may be imported at all, lazily included (a path, or a folder ending in /).
RAY_DOORS = ("sweeps/execution/", "sweeps/schedulers/", "sweeps/worker/", "sweeps/commands/submit.py")
MLFLOW_DOORS = ("tracking/",)
# worker: fit, the snapshots, the trial's tf.data pipeline; datasets: keras.datasets loaders;
# faults: raises TensorFlow's real OOM error
KERAS_DOORS = ("models/", "sweeps/worker/", "sweeps/data/datasets.py", "sweeps/testing/faults.py")


def test_ray_mlflow_and_keras_are_imported_only_behind_their_doors():
    for path in [p for top in TOPS for p in (ROOT / top).rglob("*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        imports = [line.strip() for line in text.splitlines() if line.strip().startswith(("import ", "from "))]
        roots = {i.split()[1].split(".")[0] for i in imports}
        if "ray" in roots:
            assert rel.startswith(RAY_DOORS), rel
        if "mlflow" in roots:
            assert rel.startswith(MLFLOW_DOORS), rel
        if roots & {"keras", "tensorflow"}:
            assert rel.startswith(KERAS_DOORS), rel
