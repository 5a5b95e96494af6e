"""The registry refusing the champion at the very end of a real sweep (issue 22): registration is a
post-step of a sweep that finished, so the trials stay recorded in both stores and the parent run
FINISHED, the summary is printed, then one error line names what failed and the fix; exit code 1.

The refusal is MLflow's own: a registered model name with a '/' (`Names cannot contain '/' or ':'`).
"""

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import trained

pytestmark = [pytest.mark.slow, pytest.mark.ray]

NAME = "unregistered"
N_TRIALS = 2
REFUSED = "team/digits"  # a name the MLflow registry refuses


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("regfail")
    out = root / "out"
    result = run_cli(
        "run",
        f"name={NAME}",
        f"n_trials={N_TRIALS}",
        "max_epochs=1",
        "dataset.limit=200",
        "scheduler=none",
        "sampler=random",
        "refit=false",
        "resources.num_cpus=2",
        "tracking.log_report=false",
        f"tracking.registered_model={REFUSED}",
        f"output_dir={out}",
        cwd=root,
        timeout=300,
    )
    uri = f"sqlite:///{out / 'mlflow.db'}"
    return result, out, MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_one_error_line_with_the_fix_no_traceback_exit_1(sweep):
    result, _, _ = sweep
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    (line,) = errors
    assert REFUSED in line and "Names cannot contain '/'" in line  # what failed, in MLflow's words
    assert "tracking.registered_model=null" in line  # the fix
    assert sum(REFUSED in other for other in result.stderr.splitlines()) == 1, result.stderr[-3000:]
    # The summary of the sweep that finished, before the error.
    assert f"Sweep {NAME} finished in" in result.stdout and "Best trial #" in result.stdout, result.stdout[-3000:]
    assert "not registered" in result.stdout


def test_the_sweep_finished_and_every_trial_is_in_both_stores(sweep):
    _, out, client = sweep
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id], max_results=1000)
    (parent,) = [r for r in runs if r.data.tags.get("sweeps.kind") == "sweep"]
    children = {r.info.run_id: r for r in runs if r.data.tags.get("sweeps.kind") == "trial"}
    assert parent.info.status == "FINISHED" and parent.data.tags["sweeps.state"] == "FINISHED"
    assert "sweeps.error" not in parent.data.tags
    # The parent run says the registration failed, and why; the model stays logged.
    assert REFUSED in parent.data.tags["sweeps.registration_error"]
    assert "sweeps.registered_model" not in parent.data.tags
    assert parent.data.tags["sweeps.best_model_uri"].startswith("models:/m-")
    assert client.search_registered_models() == []
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(trained(study.trials)) == N_TRIALS
    assert len(children) == len(study.trials)
    for trial in study.trials:
        run = children[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["sweeps.state"] == trial.user_attrs["outcome"]
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert run.info.status == "FINISHED"
