"""A real multi-objective sweep with a parameter budget: Pareto front in the summary and in MLflow."""

import json

import optuna
import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_pareto_front_and_budget(cli, tmp_path):
    out = tmp_path / "outputs"
    result = cli(
        "run",
        "name=mo",
        "n_trials=5",
        "max_epochs=2",
        "dataset.limit=300",
        "scheduler=none",
        "sampler=nsga2",
        "sampler.population_size=4",
        "resources.num_cpus=2",
        "objectives=[val_accuracy:max,params:min]",
        "space.filters=choice(4,8,64)",
        "space.kernel_size=3",
        "space.padding=same",
        "space.dilation_rate=1",
        "+space.max_params=50000",
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Pareto front of val_accuracy (max), params (min)" in result.stdout

    study = optuna.load_study(study_name="mo", storage=f"sqlite:///{out / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for trial in study.trials:
        over_budget = trial.params["filters"] == 64  # ~108k parameters > 50,000
        assert trial.user_attrs["outcome"] == ("INFEASIBLE" if over_budget else "COMPLETE")
        if over_budget:
            assert "exceed max_params=50,000" in trial.user_attrs["infeasible_reason"]
    assert {t.user_attrs["outcome"] for t in study.trials} == {"COMPLETE", "INFEASIBLE"}
    front = {t.number for t in study.best_trials}
    assert front

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sweeps")
    parent = next(r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("sweeps.kind") == "sweep")
    logged = json.loads(
        client.download_artifacts(parent.info.run_id, "pareto_front.json", str(tmp_path))
        and (tmp_path / "pareto_front.json").read_text()
    )
    assert {p["number"] for p in logged["front"]} == front
    assert logged["objectives"] == [["val_accuracy", "max"], ["params", "min"]]
    assert parent.data.tags["sweeps.objectives"] == "val_accuracy:max,params:min"
