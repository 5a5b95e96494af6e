"""What the MLflow UI and optuna-dashboard get from a sweep, without a browser: the experiment's
kind, the parent run's Markdown story, the trials' system metrics, the dashboard command's errors.
(tests/commands/test_ui_browser.py checks the same in a real browser, on a real sweep.)"""

import os
import sys
import time

import numpy as np
import pytest
from mlflow import MlflowClient

from sweeps.worker import sysmetrics
from tracking import SweepTracker, default_tracking_uri
from tracking.note import NOTE_LIMIT, Best, SweepStory, counts_line, reproduce_command, sweep_note
from tracking.tracker import EXPERIMENT_KIND_TAG, MODEL_TRAINING, NOTE_TAG

# ---------------------------------------------------------------- experiment kind and note on a real store


def test_a_new_experiment_opens_in_model_training_mode(tmp_path):
    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "a")
    assert MlflowClient(uri).get_experiment(tracker.experiment_id).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING


def test_an_experiment_made_before_the_tag_gets_it_when_first_used(tmp_path):
    uri = default_tracking_uri(tmp_path)
    client = MlflowClient(uri)
    old = client.create_experiment("exp", artifact_location=(tmp_path / "a").as_uri())
    client.set_experiment_tag(old, EXPERIMENT_KIND_TAG, "genai_development")
    assert SweepTracker(uri, "exp", tmp_path / "a").experiment_id == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING


def test_a_saved_runs_view_names_the_columns_the_ui_shows(tmp_path):
    import json

    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "a")
    tracker.save_runs_view("sweep-s", "Sweep s", ["filters", "learning_rate"], ["best_val_accuracy"])
    envelope = json.loads(MlflowClient(uri).get_experiment(tracker.experiment_id).tags["mlflow.sharedViewState.sweep-s"])
    assert envelope["name"] == "Sweep s" and isinstance(envelope["createdAt"], int)
    assert json.loads(envelope["state"])["selectedColumns"] == [
        "metrics.`best_val_accuracy`",
        "params.`filters`",
        "params.`learning_rate`",
        "attributes.`Models`",
    ]


def test_describe_sets_the_parent_runs_markdown_description(tmp_path):
    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "exp", tmp_path / "a")
    parent = tracker.start_sweep("s", {}, {}, "a: 1\n")
    tracker.describe(parent, "### Sweep `s`\n")
    tracker.flush()
    assert MlflowClient(uri).get_run(parent).data.tags[NOTE_TAG] == "### Sweep `s`\n"


# ---------------------------------------------------------------- the note, from plain values

STORY = SweepStory(
    name="digits",
    experiment_id="3",
    run_id="p1",
    metric="val_accuracy",
    mode="max",
    counts={"COMPLETE": 5, "PRUNED": 3, "FAILED": 1},
    dataset={"dataset.name": "digits", "dataset.digest": "ab12cd", "dataset.train_size": "1437", "dataset.val_size": "360"},
    command="python -m sweeps run name=digits-again n_trials=9",
    commit="0123456789abcdef",
    best=Best(7, 0.93125, {"filters": 32, "learning_rate": 0.00123456}, "r7"),
    plots=("report/slice.png", "report/slice.html", "report/trials.csv", "report/optimization_history.png"),
)


@pytest.mark.parametrize(
    "expected",
    [
        "### Sweep `digits`",
        "**Best [trial #7](#/experiments/3/runs/r7?workflowType=machine_learning):** val_accuracy = **0.9313** (max)",
        "Params of trial #7:",
        "| filters | 32 |",
        "| learning_rate | 0.001235 |",
        "**Trials:** 9 trials: 5 completed, 3 stopped early, 1 failed ([all trials, with their params and val_accuracy]"
        "(#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=sweep-digits))",
        "**Dataset:** digits, version (content digest) `ab12cd` (1437 train / 360 val)",
        "**Reproduce** at commit `0123456789ab`:",
        "python -m sweeps run name=digits-again n_trials=9",
        "- slice: [PNG](#/experiments/3/runs/p1/artifactPath/report/slice.png?workflowType=machine_learning)"
        " · [HTML](#/experiments/3/runs/p1/artifactPath/report/slice.html?workflowType=machine_learning)",
        "- optimization history: [PNG](#/experiments/3/runs/p1/artifactPath/report/optimization_history.png?workflowType=machine_learning)",
    ],
)
def test_the_note_tells_the_story(expected):
    assert expected in sweep_note(STORY).splitlines()


def test_the_note_links_only_previewable_plots_and_says_when_nothing_completed():
    from dataclasses import replace

    text = sweep_note(replace(STORY, best=None, stopped_because="3 trials failed, more than max_failures=2"))
    assert "trials.csv" not in text
    assert "**Best trial:** none completed (val_accuracy, max)" in text and "**Stopped:** 3 trials failed" in text


def test_a_long_note_is_cut_to_mlflows_tag_limit():
    from dataclasses import replace

    text = sweep_note(replace(STORY, best=Best(1, 0.5, {f"p{i}": "x" * 50 for i in range(400)}, None)))
    assert len(text) <= NOTE_LIMIT and text.endswith("*(cut to MLflow's 8000 characters)*\n")


@pytest.mark.parametrize(
    "counts, line",
    [
        ({}, "0 trials: none ran"),
        ({"COMPLETE": 2}, "2 trials: 2 completed"),
        ({"NOT_RUN": 1, "INFEASIBLE": 2, "COMPLETE": 0}, "3 trials: 2 infeasible, 1 not run"),
    ],
)
def test_counts_line(counts, line):
    assert counts_line(counts) == line


@pytest.mark.parametrize(
    "argv, command",
    [
        (["run"], "python -m sweeps run name=s-again"),
        (
            ["run", "name=s", "n_trials=4", "space.lr=interval(1e-4, 1e-2)"],
            "python -m sweeps run name=s-again n_trials=4 'space.lr=interval(1e-4, 1e-2)'",
        ),
        (["run", "--cfg", "+name=s", "max_epochs=2"], "python -m sweeps run name=s-again max_epochs=2"),
    ],
)
def test_the_reproduce_command_reruns_under_a_new_name(argv, command):
    assert reproduce_command(argv, "s") == command


# ---------------------------------------------------------------- system metrics of this process


def test_the_sampler_measures_this_process_cpu_and_memory():
    sampler = sysmetrics.Sampler(cpus=1, interval_s=0.05).start()
    try:
        sampler.take()
        wall, cpu = time.monotonic(), time.process_time()
        while time.process_time() < cpu + 0.4:  # one core busy (as far as the shared machine lets it)
            pass
        busy = sampler.take()
        share = 100 * (time.process_time() - cpu) / (time.monotonic() - wall)  # the kernel's other clock
        time.sleep(0.4)  # idle
        idle = sampler.take()
        block = np.ones(64_000_000, np.uint8)  # 64 MB, touched
        time.sleep(0.15)
        held = sampler.take()
        del block
    finally:
        sampler.stop()
    assert abs(busy[sysmetrics.CPU] - share) < 10 and idle[sysmetrics.CPU] < busy[sysmetrics.CPU] / 3, (share, busy, idle)
    assert held[sysmetrics.MEMORY_MB] - idle[sysmetrics.MEMORY_MB] > 50, (idle, held)
    assert 0 < held[sysmetrics.MEMORY_PERCENT] < 100
    assert all(key.startswith("system/") for key in held)
    assert sampler.own_cpu_s < 0.1


def test_reports_carry_the_epochs_system_metrics_and_the_rest_is_tunes():
    class FakeTune:  # only the reporting surface: what the trial loop calls on ray.tune
        def __init__(self):
            self.reports = []

        def report(self, metrics, checkpoint=None):
            self.reports.append((metrics, checkpoint))

        def get_checkpoint(self):
            return "ckpt"

    tune = FakeTune()
    with sysmetrics.sampling(tune, cpus=2, interval_s=0.05) as reporting:
        reporting.report({"val_accuracy": 0.5}, checkpoint="c1")
        assert reporting.get_checkpoint() == "ckpt"
    ((metrics, checkpoint),) = tune.reports
    assert checkpoint == "c1" and metrics["val_accuracy"] == 0.5
    assert set(sysmetrics.system_metrics(metrics)) >= {sysmetrics.CPU, sysmetrics.MEMORY_MB}


@pytest.mark.skipif(
    not os.path.exists("/proc/driver/nvidia") and not os.environ.get("CUDA_VISIBLE_DEVICES"), reason="no NVIDIA GPU here"
)
@pytest.mark.gpu
def test_the_sampler_reports_the_gpu_it_was_given():
    sampler = sysmetrics.Sampler(cpus=1, interval_s=0.05).start()
    try:
        time.sleep(0.2)
        metrics = sampler.take()
    finally:
        sampler.stop()
    index = sampler.gpus.handles[0][0]
    util, memory_mb, memory_percent = sysmetrics.gpu_keys(index)
    assert 0 <= metrics[util] <= 100 and metrics[memory_mb] > 0 and 0 < metrics[memory_percent] <= 100


# ---------------------------------------------------------------- python -m sweeps dashboard: errors


def test_dashboard_of_an_unknown_sweep_names_the_known_ones(tmp_path, cli):
    import optuna

    optuna.create_study(study_name="known", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    result = cli("dashboard", "nope", f"output_dir={tmp_path}")
    assert result.returncode == 2 and "no sweep named 'nope'" in result.stderr and "known" in result.stderr


def test_dashboard_without_optuna_dashboard_says_how_to_install_it(tmp_path):
    import subprocess

    import optuna

    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    # The package hidden from this one interpreter, as on a machine without the extra.
    code = (
        "import sys; sys.modules['optuna_dashboard'] = None; from sweeps.cli import main; "
        f"sys.exit(main(['dashboard', 's', 'output_dir={tmp_path}']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "optuna-dashboard is not installed" in result.stderr and "pip install 'optuna-dashboard==0.21.0'" in result.stderr
