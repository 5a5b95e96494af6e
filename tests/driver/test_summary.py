"""sweeps.driver.summary without a sweep: the champion a registry refuses, against a real MLflow sqlite store."""

import sweeps
from sweeps.core.errors import EXIT_FAILED
from sweeps.driver.summary import Summary, crown_champion
from tracking import SweepTracker


def test_a_refused_registration_is_one_line_naming_it_and_the_fix(tmp_path):
    cfg = sweeps.compose(["tracking.registered_model=team/digits"], output_dir=tmp_path)
    tracker = SweepTracker(cfg.tracking_uri, "exp", tmp_path / "artifacts")
    parent = tracker.start_sweep("s", {}, {}, "a: 1\n")
    registered, version, line = crown_champion(tracker, f"runs:/{parent}/model", cfg)
    tracker.close()
    assert registered is None and version is None and line is not None and "\n" not in line
    assert line.startswith("tracking.registered_model: the sweep finished and its trials are recorded")
    assert f"runs:/{parent}/model" in line and "tracking.registered_model=null" in line


def test_the_cli_prints_the_summary_then_the_line_and_exits_1(capsys):
    from sweeps.cli import _finish

    summary = Summary(
        name="s",
        wall_time_s=1.0,
        counts={"COMPLETE": 2},
        best_number=1,
        best_value=0.9,
        best_params={},
        best_run_id="r",
        model_uri="models:/m-1",
        parent_run_id="p",
        experiment_id="1",
        tracking_uri="sqlite:///x.db",
        metric="val_accuracy",
        study_url="sqlite:///o.db",
        not_registered="tracking.registered_model: refused. Fix: another name",
    )
    assert _finish(summary) == EXIT_FAILED
    printed = capsys.readouterr()
    assert "Sweep s finished" in printed.out and "not registered (the error below says why)" in printed.out
    assert printed.err == "error: tracking.registered_model: refused. Fix: another name\n"
