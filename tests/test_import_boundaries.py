"""Each heavy library enters through its one door: checked in a fresh interpreter per module."""

import json
import subprocess
import sys

import pytest

HEAVY = ("ray", "mlflow", "keras", "tensorflow", "optuna")

# module -> heavy libraries it may pull in (and nothing else from HEAVY)
ALLOWED = {
    "sweeps.space": {"optuna"},
    "sweeps.autospace": set(),  # space=auto's rules: pure, validation imports it
    "sweeps.config": {"optuna"},
    "sweeps.search": {"optuna"},
    "sweeps.datasets": set(),
    "sweeps.cli": {"optuna"},
    "sweeps.sweep": {"optuna"},
    "sweeps.reporting": {"optuna"},
    "sweeps": set(),  # the notebook API: everything loads when a function runs
    "sweeps.recovery": {"optuna", "mlflow"},
    "sweeps.outcomes": set(),
    "sweeps.errors": set(),
    "sweeps.metrics": set(),
    "sweeps.registry": set(),  # names and import paths only: validation and --help import no heavy library
    "sweeps.redaction": set(),
    "models.native_log": set(),
    "sweeps.checkpoints": set(),
    "sweeps.faults": set(),
    "sweeps.progress": set(),
    "sweeps.predict": set(),
    "sweeps.datasets_cmd": set(),
    "sweeps.folders": set(),
    "sweeps.feed": set(),  # TensorFlow loads inside the trial, in the worker
    "sweeps.testscore": set(),
    "sweeps.server": {"optuna"},
    "sweeps.submit": set(),
    "sweeps.sysmetrics": set(),  # NVML loads in the worker, when a trial samples a GPU
    "sweeps.dashboard": {"optuna"},
    "models.plan": set(),
    "models.conv2d": {"keras", "tensorflow"},
    "tracking": {"mlflow"},
    "sweeps.trial": set(),  # TensorFlow and Ray load inside the trial, in the worker
    "sweeps.runner": {"ray", "optuna", "mlflow"},
}


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_module_imports_only_its_doors(module):
    code = f"import sys, json; import {module}; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert loaded <= ALLOWED[module], f"{module} imports {sorted(loaded - ALLOWED[module])}"


def test_only_runner_and_trial_mention_ray_and_only_tracking_mentions_mlflow():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for path in [*root.glob("sweeps/*.py"), *root.glob("models/*.py"), *root.glob("tracking/*.py")]:
        text = path.read_text()
        imports = [line.strip() for line in text.splitlines() if line.strip().startswith(("import ", "from "))]
        if any(i.split()[1].split(".")[0] == "ray" for i in imports):
            # runner: the Tune loop; trial: tune.report inside workers; submit: the Jobs API client;
            # sysmetrics: the NVML binding Ray ships, in the worker
            assert path.name in {"runner.py", "trial.py", "submit.py", "sysmetrics.py"}, path
        if any(i.split()[1].split(".")[0] == "mlflow" for i in imports):
            assert path.parent.name == "tracking", path
        if any(i.split()[1].split(".")[0] in {"keras", "tensorflow"} for i in imports):
            # trial: fit; feed: the trial's tf.data pipeline; datasets: keras.datasets loaders;
            # faults: raises TensorFlow's real OOM error
            assert path.parent.name == "models" or path.name in {"trial.py", "feed.py", "datasets.py", "faults.py"}, path
