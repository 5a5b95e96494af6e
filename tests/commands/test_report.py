"""`python -m sweeps report`: the trials table from an in-memory study, then a real sweep's report."""

import math
import shutil
from datetime import datetime, timedelta

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from sweeps.commands.report import build_trials_frame, format_table, frame_columns, write_report
from tests.conftest import main_in_process
from tracking import RunRecord, default_tracking_uri

DISTS = {
    "filters": CategoricalDistribution([16, 32]),
    "padding": CategoricalDistribution([3, "same"]),  # mixed types: Parquet must still take it
    "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
    "blocks": IntDistribution(1, 3),
}
PLOTS = ("optimization_history", "parallel_coordinate", "slice", "learning_curves")


def _trial(state, params, outcome=None, value=None, values=None, run_id=None, steps=None):
    start = datetime(2026, 1, 1)
    attrs = {k: v for k, v in (("outcome", outcome), ("mlflow_run_id", run_id)) if v is not None}
    trial = create_trial(
        state=state,
        value=value,
        values=values,
        params=params,
        distributions={k: DISTS[k] for k in params},
        user_attrs=attrs,
        intermediate_values={s: 0.1 * s for s in range(1, (steps or 0) + 1)},
    )
    trial.datetime_start, trial.datetime_complete = start, start + timedelta(seconds=7.5)
    return trial


def _study(directions=("maximize",)):
    study = optuna.create_study(directions=list(directions))
    several = len(directions) > 1

    def objective(v):
        return {"values": [v, 1 - v]} if several else {"value": v}

    study.add_trial(
        _trial(
            TrialState.COMPLETE,
            {"filters": 16, "padding": 3, "learning_rate": 1e-3},
            "COMPLETE",
            run_id="r0",
            steps=3,
            **objective(0.6),
        )
    )
    study.add_trial(
        _trial(TrialState.PRUNED, {"filters": 32, "padding": "same", "learning_rate": 1e-2}, "INFEASIBLE", run_id="r1")
    )
    study.add_trial(
        _trial(
            TrialState.COMPLETE,
            {"filters": 32, "padding": "same", "learning_rate": 3e-3, "blocks": 2},
            "COMPLETE",
            run_id="r2",
            steps=3,
            **objective(0.9),
        )
    )
    study.add_trial(_trial(TrialState.PRUNED, {"filters": 16, "padding": 3, "learning_rate": 2e-4}, None, run_id="r3", steps=1))
    study.add_trial(_trial(TrialState.FAIL, {"filters": 16, "padding": 3, "learning_rate": 5e-4}, "NOT_RUN"))
    return study


def _run(run_id, number, val_accuracy=(), node=None):
    tags = {"optuna.trial_number": str(number), **({"sweeps.node": node} if node else {})}
    points = tuple(enumerate(val_accuracy, start=1))
    loss = tuple((s, 2.0 - v) for s, v in points)
    return RunRecord(
        run_id,
        f"trial-{number:03d}",
        "FINISHED",
        "1",
        tags,
        {},
        0,
        1,
        {"val_accuracy": points, "val_loss": loss, "train_accuracy": points, "train_loss": loss},
    )


RUNS = {
    "r0": _run("r0", 0, (0.4, 0.6, 0.5), node="10.0.0.7"),
    "r2": _run("r2", 2, (0.5, 0.7, 0.9)),
    "r3": _run("r3", 3, (0.2,)),
    "r1": _run("r1", 1),
}


def test_frame_has_one_row_per_trial_with_documented_columns():
    frame = build_trials_frame(_study(), RUNS)
    assert list(frame.columns) == frame_columns(["blocks", "filters", "learning_rate", "padding"])
    assert list(frame["number"]) == [0, 1, 2, 3, 4]
    assert list(frame["state"]) == ["COMPLETE", "INFEASIBLE", "COMPLETE", "PRUNED", "NOT_RUN"]
    row = frame.iloc[0]
    assert (row["value"], row["final_val_accuracy"], row["best_val_accuracy"]) == (0.6, 0.5, 0.6)
    assert row["best_val_loss"] == pytest.approx(1.4) and row["final_val_loss"] == pytest.approx(1.5)
    assert (row["epochs"], row["duration_s"], row["node"], row["mlflow_run_id"]) == (3, 7.5, "10.0.0.7", "r0")
    assert math.isnan(frame.loc[0, "param.blocks"]) and frame.loc[2, "param.blocks"] == 2
    infeasible = frame.iloc[1]
    assert infeasible["epochs"] == 0 and math.isnan(infeasible["value"]) and math.isnan(infeasible["best_val_accuracy"])
    assert frame.loc[4, "mlflow_run_id"] == "" and frame.loc[4, "node"] == "" and frame.loc[4, "epochs"] == 0


def test_frame_without_mlflow_runs_falls_back_to_optuna():
    frame = build_trials_frame(_study(), {})
    assert list(frame["epochs"]) == [3, 0, 3, 1, 0]
    assert frame["final_val_accuracy"].isna().all() and list(frame["mlflow_run_id"][:2]) == ["r0", "r1"]


def test_state_is_the_sweeps_one_outcome_rule():
    """An interrupted trial (Optuna: FAIL) reads INTERRUPTED, a plain FAIL reads FAILED, as in the
    summary and the MLflow runs; a trial still running reads RUNNING."""
    study = optuna.create_study()
    study.add_trial(_trial(TrialState.FAIL, {"filters": 16}, "INTERRUPTED"))
    study.add_trial(_trial(TrialState.FAIL, {"filters": 32}))
    running = _trial(TrialState.COMPLETE, {"filters": 16}, value=0.5)
    running.state, running.values, running.datetime_complete = TrialState.RUNNING, None, None
    study.add_trial(running)
    assert list(build_trials_frame(study, {})["state"]) == ["INTERRUPTED", "FAILED", "RUNNING"]


def test_frame_of_an_empty_study_still_has_its_columns():
    frame = build_trials_frame(optuna.create_study(), {})
    assert frame.empty and list(frame.columns) == frame_columns()


def test_several_objectives_get_a_column_each():
    frame = build_trials_frame(_study(("maximize", "minimize")), RUNS)
    assert list(frame.columns[:5]) == ["number", "state", "value", "value.0", "value.1"]
    assert frame.loc[2, ["value", "value.0", "value.1"]].tolist() == pytest.approx([0.9, 0.9, 0.1])


def test_table_is_best_first_for_either_mode():
    frame = build_trials_frame(_study(), RUNS)
    best_first = format_table(frame, "val_accuracy", "max").splitlines()
    assert best_first[0].split()[:3] == ["number", "state", "value"] and "node" in best_first[0]
    assert [line.split()[0] for line in best_first[1:]] == ["2", "0", "3", "1", "4"]
    lowest_loss = format_table(frame, "val_loss", "min", limit=2).splitlines()
    assert [line.split()[0] for line in lowest_loss[1:]] == ["0", "2"]
    assert format_table(frame.iloc[0:0], "val_accuracy", "max") == "no trials"


def _files(directory):
    return {p.name for p in directory.iterdir()}


def test_report_of_a_multi_objective_study_has_a_pareto_front(tmp_path):
    """The writing half of a report, on an in-memory study (make_report's own steps)."""
    from sweeps.commands.report import curves, learning_curve_plot, render, study_plots, top_completed, write_tables

    study = _study(("maximize", "minimize"))
    frame = build_trials_frame(study, RUNS)
    files = write_tables(frame, tmp_path)
    for plot in [*study_plots(study), learning_curve_plot(curves(top_completed(frame, study), RUNS))]:
        files.update(render(plot, tmp_path))
    expected = {f"{p}.{ext}" for p in (*PLOTS, "param_importances", "pareto_front") for ext in ("png", "html")}
    assert set(files) == expected | {"trials.csv", "trials.parquet"} == _files(tmp_path)
    assert pd.read_parquet(tmp_path / "trials.parquet")["param.padding"].tolist() == ["3", "same", "same", "3", "3"]


def test_importances_are_left_out_when_no_param_ever_varies(tmp_path):
    from sweeps.commands.report import render, study_plots

    study = optuna.create_study(direction="maximize")
    for value in (0.1, 0.2, 0.3):
        study.add_trial(_trial(TrialState.COMPLETE, {"filters": 16}, "COMPLETE", value=value))
    plots = {p.stem: p for p in study_plots(study)}
    assert "pareto_front" not in plots and render(plots["param_importances"], tmp_path) == {}
    assert _files(tmp_path) == set()


def _many(n):
    study = optuna.create_study(direction="maximize")
    for i in range(n):
        params = {"filters": (16, 32)[i % 2], "learning_rate": 1e-4 * (1 + i), "blocks": 1 + i % 3}
        study.add_trial(_trial(TrialState.COMPLETE, params, "COMPLETE", value=0.5 + 0.01 * (i % 2) + 1e-4 * i))
    return study


def test_importances_learn_from_a_seeded_sample_of_a_large_study_and_say_so():
    from sweeps.commands.importances import importance_sample

    study = _many(40)
    sample, title = importance_sample(study, 10)
    again, _ = importance_sample(study, 10)
    key = [(t.params, t.value) for t in sample.trials]
    assert len(key) == 10 and key == [(t.params, t.value) for t in again.trials]  # seeded
    assert all(pair in [(t.params, t.value) for t in study.trials] for pair in key)
    assert title == "Hyperparameter Importances (fANOVA on a seeded sample of 10 of 40 completed trials)"
    assert importance_sample(study, 40) == (study, "Hyperparameter Importances")


def test_the_importances_plot_computes_fanova_once_for_both_files(tmp_path, monkeypatch):
    from optuna.importance import FanovaImportanceEvaluator

    import sweeps.commands.importances as importances
    import sweeps.commands.report as report

    learnt_from = []
    real = FanovaImportanceEvaluator.evaluate

    def counted(self, study, params=None, *, target=None):
        learnt_from.append(len(study.trials))
        return real(self, study, params, target=target)

    monkeypatch.setattr(FanovaImportanceEvaluator, "evaluate", counted)
    monkeypatch.setattr(importances, "IMPORTANCE_TRIALS", 10)
    plots = {p.stem: p for p in report.study_plots(_many(40))}
    files = report.render(plots["param_importances"], tmp_path)
    assert set(files) == {"param_importances.html", "param_importances.png"} and learnt_from == [10]
    assert "a seeded sample of 10 of 40 completed trials" in (tmp_path / "param_importances.html").read_text()


def test_unknown_sweep_in_an_empty_folder_writes_nothing(tmp_path, capsys):
    code, _, err = main_in_process(capsys, "report", "nope", f"output_dir={tmp_path}")
    assert code == 2
    assert err.startswith(f"error: name: no sweep named 'nope' in {tmp_path}. Fix: run a sweep first")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- a real sweep


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("report") / "outputs"
    result = run_cli(
        "run",
        "name=rep",
        "n_trials=4",
        "max_epochs=2",
        "dataset.limit=300",
        "resources.num_cpus=2",
        "scheduler=none",
        "tracking.log_best_model=false",
        f"output_dir={out}",
        cwd=out.parent,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The sweep's own report, drawn from the driver's study in memory, before a reread overwrites it.
    shutil.copy(out / "reports" / "rep" / "trials.parquet", out.parent / "driver-trials.parquet")
    uri = default_tracking_uri(out)
    return out, uri, write_report("rep", out, uri, "sweeps")


@pytest.mark.slow
@pytest.mark.ray
def test_report_files_exist_and_are_logged_to_the_parent_run(reported):
    out, uri, files = reported
    directory = out / "reports" / "rep"
    expected = {f"{p}.{ext}" for p in PLOTS for ext in ("png", "html")} | {"trials.csv", "trials.parquet"}
    assert expected <= set(files) and "pareto_front.png" not in files
    assert all(path.parent == directory and path.stat().st_size > 0 for path in files.values())
    client = MlflowClient(uri)
    parent = next(
        r
        for r in client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
        if r.data.tags.get("sweeps.kind") == "sweep"
    )
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "report")} == {f"report/{name}" for name in files}


@pytest.mark.slow
@pytest.mark.ray
def test_report_table_matches_the_study_and_mlflow(reported):
    out, _, files = reported
    frame = pd.read_parquet(files["trials.parquet"])
    study = optuna.load_study(study_name="rep", storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(frame) == len(study.trials) and (frame["state"] != "INFEASIBLE").sum() == 4
    params = sorted({p for t in study.trials for p in t.params})
    assert list(frame.columns) == frame_columns(params)
    assert list(pd.read_csv(files["trials.csv"]).columns) == list(frame.columns)
    assert set(frame["state"]) <= {"COMPLETE", "PRUNED", "INFEASIBLE", "FAILED", "NOT_RUN"}
    done = frame[frame["state"] == "COMPLETE"]
    assert len(done) >= 1 and (done["epochs"] == 2).all()
    assert (done["value"] == done["best_val_accuracy"]).all()  # the objective is the best epoch
    assert frame["mlflow_run_id"].str.len().eq(32).all()


@pytest.mark.slow
@pytest.mark.ray
def test_the_sweeps_own_report_from_its_study_in_memory_is_the_report_read_back_from_the_stores(reported):
    out, _, files = reported
    pd.testing.assert_frame_equal(pd.read_parquet(out.parent / "driver-trials.parquet"), pd.read_parquet(files["trials.parquet"]))


@pytest.mark.slow
@pytest.mark.ray
def test_cli_entry_prints_the_table_or_refuses_an_unknown_name(reported, capsys):
    out, _, _ = reported
    code, _, err = main_in_process(capsys, "report", "nope", f"output_dir={out}")
    assert code == 2
    assert f"no sweep named 'nope' in {out}. Fix: pick one of: rep" in err
    assert not (out / "reports" / "nope").exists()
    code, stdout, _ = main_in_process(capsys, "report", "rep", f"output_dir={out}")
    assert code == 0
    assert "best_val_accuracy" in stdout and "under report/" in stdout
