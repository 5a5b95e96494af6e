"""The Python API (`import sweeps`) and the error family it raises: tables of the pure parts, then
the notebook `docs/example.ipynb` executed end to end on a tiny real sweep."""

import json
import os
import pickle
import subprocess
import sys
from types import SimpleNamespace

import pytest

from sweeps.core import errors
from sweeps.core.outcomes import Outcome, outcome_of, state_name
from tests.conftest import ROOT

NOTEBOOK = ROOT / "docs" / "example.ipynb"


# ---------------------------------------------------------------- the error family


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.InputError, 2),
        (errors.ConfigError, 2),
        (errors.DatasetError, 2),
        (errors.FolderError, 2),
        (errors.SubmitError, 2),
        (errors.SweepsError, 1),
    ],
)
def test_every_error_is_a_sweeps_error_with_its_exit_code(cls, code):
    assert issubclass(cls, errors.SweepsError) and cls.exit_code == code


def test_input_error_names_field_problem_fix_redacted_and_survives_pickling():
    exc = errors.ConfigError("tracking.uri", "cannot reach postgresql://me:hunter2@db/x", "start it")
    assert (exc.field, exc.key, exc.fix) == ("tracking.uri", "tracking.uri", "start it")
    assert str(exc) == "tracking.uri: cannot reach postgresql://me:***@db/x. Fix: start it"
    assert errors.message(exc) == f"error: {exc}"
    back = pickle.loads(pickle.dumps(exc))  # as Ray carries it between processes
    assert type(back) is errors.ConfigError and str(back) == str(exc) and back.field == "tracking.uri"


def test_the_old_names_still_import_from_their_modules():
    from sweeps.commands.submit import EXIT_BAD_INPUT, SubmitError
    from sweeps.core.errors import ConfigError
    from sweeps.data.datasets import DatasetError
    from sweeps.data.folders import FolderError

    assert (ConfigError, DatasetError, FolderError, SubmitError) == (
        errors.ConfigError,
        errors.DatasetError,
        errors.FolderError,
        errors.SubmitError,
    )
    assert EXIT_BAD_INPUT == errors.EXIT_BAD_INPUT == 2


def test_exit_codes_are_defined_once():
    """No module but sweeps/core/errors.py assigns an exit code."""
    for path in (ROOT / "sweeps").rglob("*.py"):
        if path.name != "errors.py":
            assigned = [line for line in path.read_text().splitlines() if line.lstrip().startswith("EXIT_") and "=" in line]
            assert assigned == [], f"{path.name}: {assigned}"


# ---------------------------------------------------------------- one outcome rule


def _trial(state, outcome=None):
    return SimpleNamespace(
        user_attrs={"outcome": outcome} if outcome else {},
        state=SimpleNamespace(name=state, is_finished=lambda: state not in ("RUNNING", "WAITING")),
    )


@pytest.mark.parametrize(
    ("state", "label", "outcome", "shown"),
    [
        ("COMPLETE", None, Outcome.COMPLETE, "COMPLETE"),
        ("PRUNED", None, Outcome.PRUNED, "PRUNED"),
        ("FAIL", None, Outcome.FAILED, "FAILED"),
        ("FAIL", "INFEASIBLE", Outcome.INFEASIBLE, "INFEASIBLE"),
        ("FAIL", "NOT_RUN", Outcome.NOT_RUN, "NOT_RUN"),
        ("FAIL", "INTERRUPTED", Outcome.INTERRUPTED, "INTERRUPTED"),  # the report's old list lacked it
        ("FAIL", "bogus", Outcome.FAILED, "FAILED"),
        ("RUNNING", None, None, "RUNNING"),
    ],
)
def test_one_rule_decides_a_trials_outcome(state, label, outcome, shown):
    trial = _trial(state, label)
    if outcome is not None:
        assert outcome_of(trial) is outcome
    assert state_name(trial) == shown


def test_the_note_and_the_summary_speak_one_vocabulary():
    from sweeps.core.outcomes import WORDS
    from tracking.note import OUTCOME_WORDS

    assert [key for key, _ in OUTCOME_WORDS] == [o.value for o in Outcome] == [o.value for o in WORDS]


def test_epoch_metrics_have_one_home():
    from sweeps.commands import report as reporting
    from sweeps.config import validation as config
    from sweeps.core import metrics
    from sweeps.worker import trainable as trial
    from tracking import query

    assert config.REPORTED_METRICS is trial.EPOCH_METRICS is query.EPOCH_METRICS is metrics.EPOCH_METRICS
    assert reporting.frame_columns()[3:5] == ["final_val_accuracy", "best_val_accuracy"]


# ---------------------------------------------------------------- the API, fast


def test_importing_sweeps_loads_no_heavy_library():
    code = "import sys, sweeps; print(sorted(m for m in ('ray', 'mlflow', 'keras', 'tensorflow', 'optuna', 'pandas', 'hydra') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_compose_gives_the_validated_config_and_one_tracking_uri(tmp_path):
    import sweeps

    cfg = sweeps.compose(["n_trials=3"], output_dir=tmp_path)
    assert cfg.n_trials == 3 and cfg.output_dir == tmp_path
    assert cfg.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert sweeps.compose(["tracking.uri=http://127.0.0.1:5999"]).tracking_uri == "http://127.0.0.1:5999"
    with pytest.raises(sweeps.InputError) as info:
        sweeps.compose(["n_trials=0"], output_dir=tmp_path)
    assert info.value.field == "n_trials" and "1 or more" in info.value.fix
    assert list(tmp_path.iterdir()) == []


def test_load_and_report_of_an_unknown_sweep_raise_and_write_nothing(tmp_path):
    import sweeps

    for call in (sweeps.load, sweeps.report):
        with pytest.raises(sweeps.InputError, match="no sweep named 'nope'") as info:
            call("nope", output_dir=tmp_path)
        assert info.value.field == "name"
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the notebook, end to end

_RUNNER = """
import json, sys
cells = [c for c in json.load(open(sys.argv[1]))["cells"] if c["cell_type"] == "code"]
ns = {}
for i, cell in enumerate(cells):
    exec(compile("".join(cell["source"]), f"<cell {i}>", "exec"), ns)
s, sw, r, t = ns["summary"], ns["sweep"], ns["report"], ns["trials"]
done = t[t["state"] == "COMPLETE"]
print("RESULT " + json.dumps({
    "counts": s.counts, "best_number": s.best_number, "best_value": s.best_value,
    "parent_run_id": s.parent_run_id, "tracking_uri": s.tracking_uri,
    "study_trials": len(sw.study.trials), "study_name": sw.study.study_name,
    "loaded_parent": sw.parent_run.run_id, "frame_type": type(t).__module__ + "." + type(t).__name__,
    "numbers": t["number"].tolist(), "done_epochs": done["epochs"].tolist(),
    "done_value_is_best_epoch": bool((done["value"] == done["best_val_accuracy"]).all()),
    "frame_best": float(done["value"].max()) if len(done) else None,
    "report_files": {k: str(v) for k, v in r.files.items()}, "report_parent": r.parent_run_id,
    "bad": [ns["bad"].field, ns["bad"].fix],
}))
"""


@pytest.mark.slow
@pytest.mark.ray
def test_the_notebook_example_runs_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SWEEPS_OUTPUT_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(NOTEBOOK)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    out = tmp_path / "outputs"
    # the sweep: three trials, the best one found and kept
    assert sum(found["counts"].values()) == 3 and found["best_number"] is not None
    assert found["tracking_uri"] == f"sqlite:///{out / 'mlflow.db'}"
    # load: the same study, the same parent run, a DataFrame with a row per trial
    assert found["study_trials"] == 3 and found["study_name"] == "notebook-digits"
    assert found["loaded_parent"] == found["parent_run_id"]
    assert found["frame_type"] == "pandas.DataFrame" and found["numbers"] == [0, 1, 2]
    assert found["done_epochs"] and set(found["done_epochs"]) == {2} and found["done_value_is_best_epoch"]
    assert found["frame_best"] == pytest.approx(found["best_value"])
    # report: written under the notebook's outputs folder and logged to the sweep's parent run
    assert {"trials.csv", "trials.parquet", "optimization_history.png"} <= set(found["report_files"])
    assert all(
        os.path.dirname(p) == str(out / "reports" / "notebook-digits") and os.path.getsize(p) > 0
        for p in found["report_files"].values()
    )
    assert found["report_parent"] == found["parent_run_id"]
    # bad input: the field and the fix, and no second sweep written
    assert found["bad"][0] == "n_trials" and "1 or more" in found["bad"][1]
    assert sorted(p.name for p in (out / "sweeps").iterdir()) == ["notebook-digits"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]
