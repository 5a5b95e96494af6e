"""The sweep's dashboards in a real headless Chromium, on a real small sweep: `python -m sweeps ui`
(MLflow) and `python -m sweeps dashboard` (optuna-dashboard), each started by the test as a user
starts it, and each page opened from the links the product prints.

Needs Debian's `chromium` (`.ci/run` installs it) and optuna-dashboard (the `test` extra). In CI
(`CI=true`) a missing one FAILS these tests; on a developer's machine they skip with the reason.
`docs/screenshots.sh` runs this file with SWEEPS_UI_SCREENSHOTS=docs to refresh the README's pictures.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.browser import CHROMIUM, Chromium
from tests.conftest import _free_port

pytestmark = [pytest.mark.slow, pytest.mark.ray]

NAME = "digits-small"
N_TRIALS, EPOCHS, KEEP = 3, 2, 2
IN_CI = os.environ.get("CI", "").lower() == "true"
SHOTS = os.environ.get("SWEEPS_UI_SCREENSHOTS")  # a folder: the screenshots are copied there
PAGE_S = 120  # a page on a loaded 2-core machine (MLflow's UI fetches a few MB of scripts)


def _missing(what: str, fix: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is missing in CI ({fix}): the browser tests must run there", pytrace=False)
    pytest.skip(f"{what} is missing: {fix} to run the browser tests")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        _missing(f"Chromium ({CHROMIUM})", "apt-get install -y chromium")
    with Chromium(tmp_path_factory.mktemp("chromium") / "profile") as chromium:
        yield chromium


# ---------------------------------------------------------------- servers the test starts as a user would


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps", *args],
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(server: subprocess.Popen) -> None:
    """End the server and what it started: the process group this test started, and nothing else
    (uvicorn's children outlive their parent's SIGTERM, hence the SIGKILL to the group after)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait(timeout=10)


def _printed_url(log: Path, server: subprocess.Popen, pattern: str, timeout_s: float = 120) -> str:
    """The address the command printed for its user, once the server answers on it."""
    deadline, url = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited {server.returncode}:\n{log.read_text()[-3000:]}"
        found = re.search(pattern, log.read_text())
        url = found.group(0) if found else None
        if url:
            try:
                with urllib.request.urlopen(url.split("#")[0], timeout=3) as response:
                    if response.status == 200:
                        return url
            except OSError:
                pass
        time.sleep(0.5)
    pytest.fail(f"no answer on {url or pattern} within {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A tiny real sweep; `python -m sweeps ui` starts on its store once the parent run exists (while
    the trials run, as a user would) and serves it once the sweep is done."""
    root = tmp_path_factory.mktemp("ui")
    out = root / "outputs"
    uri = f"sqlite:///{out / 'mlflow.db'}"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sweeps",
            "run",
            f"name={NAME}",
            f"n_trials={N_TRIALS}",
            f"max_epochs={EPOCHS}",
            "dataset.limit=300",
            "scheduler=none",
            "resources.num_cpus=2",
            f"resources.keep_checkpoints={KEEP}",  # 2 of the 3 trials' models kept, and logged
            f"output_dir={out}",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    ui, lines, log = None, [], root / "ui.log"
    try:
        for line in run.stdout:
            lines.append(line)
            if ui is None and f"Sweep {NAME}:" in line and "MLflow run" in line:  # the store and parent run exist
                ui = _start(["ui", f"output_dir={out}", "--port", str(_free_port())], root, log)
        assert run.wait(timeout=300) == 0, "".join(lines)[-4000:]
        assert ui is not None, "".join(lines)[-4000:]
        experiment_url = _printed_url(
            log, ui, r"http://127\.0\.0\.1:\d+/#/experiments/\d+/runs\?workflowType=machine_learning&viewStateShareKey=\S+"
        )
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("sweeps")
        runs = client.search_runs([experiment.experiment_id])
        parent = next(r for r in runs if r.data.tags.get("sweeps.kind") == "sweep")
        trials = sorted((r for r in runs if r.data.tags.get("sweeps.kind") == "trial"), key=lambda r: r.info.run_name)
        # The pages the sweep's summary sends the user to: its trials, and its run.
        host = experiment_url.split("/")[2]
        trials_page = re.search(r"then open (\S+)", "".join(lines)).group(1).replace("127.0.0.1:5000", host)
        run_page = re.search(r"the sweep's run: (\S+)", "".join(lines)).group(1).replace("127.0.0.1:5000", host)
        yield {
            "root": root,
            "out": out,
            "uri": uri,
            "client": client,
            "experiment": experiment,
            "parent": parent,
            "trials": trials,
            "experiment_url": experiment_url,
            "run_page": run_page,
            "trials_page": trials_page,
            "base": experiment_url.split("#")[0],
            "summary": "".join(lines),
        }
    finally:
        if run.poll() is None:
            run.kill()
        if ui is not None:
            _stop(ui)


def _shot(browser: Chromium, tmp_path: Path, name: str) -> None:
    data = browser.screenshot(tmp_path / name)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a rendered page, not a blank one
    if SHOTS:
        shutil.copyfile(tmp_path / name, Path(SHOTS) / name)


def _tidy(browser: Chromium) -> None:
    """Close MLflow's assistant side panel, if open, so a screenshot shows the page itself."""
    browser.evaluate("document.querySelector('[data-component-id=\"mlflow.assistant.chat_panel.close\"]')?.click()")


def _open(browser: Chromium, url: str) -> None:
    browser.open("about:blank")  # a fresh document: no text of the previous page lingers
    browser.open(url)


# ---------------------------------------------------------------- MLflow UI


def _rows(browser: Chromium) -> list[str]:
    """The run ids of the runs table's rows, top to bottom."""
    return browser.evaluate(
        "(() => { const seen = new Map(); document.querySelectorAll('[row-id][row-index]').forEach(r =>"
        " seen.set(r.getAttribute('row-id'), +r.getAttribute('row-index')));"
        " return [...seen.entries()].sort((a, b) => a[1] - b[1]).map(e => e[0]) })()"
    )


def test_the_runs_table_compares_the_trials_with_no_clicks(browser, sweep, tmp_path):
    """What `sweeps ui`, the summary and the parent's description open: the sweep's trials, best
    first, with the objective, the trial number, the outcome and the searched params as columns."""
    assert sweep["experiment"].tags["mlflow.experimentKind"] == "custom_model_development"
    assert sweep["trials_page"] == sweep["experiment_url"]  # the summary's link is `ui`'s
    note = sweep["parent"].data.tags["mlflow.note.content"]
    assert sweep["experiment_url"].split("#")[1] in note  # and the description's
    names = [t.info.run_name for t in sweep["trials"]]
    assert len(names) == N_TRIALS
    _open(browser, sweep["experiment_url"])
    text = browser.wait_for(lambda t: all(n in t for n in names), PAGE_S, f"the trials {names}, not collapsed")
    nav = text.split("Model registry")[0]  # the side bar: model training's entries, none of GenAI's
    assert "Runs" in nav and "Models" in nav and "Judges" not in nav and "Prompts" not in nav, nav
    columns = set(
        browser.wait_for_js(
            "(() => { const ids = [...document.querySelectorAll('[role=columnheader][col-id]')].map(c => c.getAttribute('col-id'));"
            " return ids.some(i => i.startsWith('params.')) ? ids : null })()",
            PAGE_S,
            "param columns in the runs table",
        )
    )
    assert {"metrics.`best_val_accuracy`", "tags.`optuna.trial_number`", "tags.`sweeps.state`"} <= columns, sorted(columns)
    searched = sorted(sweep["trials"][0].data.params)
    assert any(f"params.`{p}`" in columns for p in searched), (searched, columns)  # those in view at least
    assert sweep["parent"].info.run_id not in _rows(browser)  # the trials themselves, not their parent
    # Sorted by the objective, best first (a trial without one, e.g. infeasible, last).
    value = {t.info.run_id: t.data.metrics.get("best_val_accuracy", float("-inf")) for t in sweep["trials"]}
    shown = [value[r] for r in _rows(browser)]
    assert len(shown) == N_TRIALS and shown == sorted(shown, reverse=True), shown
    _tidy(browser)
    _shot(browser, tmp_path, "ui-runs.png")


def test_the_models_tab_ranks_the_kept_checkpoints_with_their_metrics(browser, sweep, tmp_path):
    models = sweep["client"].search_logged_models(
        [sweep["experiment"].experiment_id],
        filter_string=f"tags.`sweeps.name` = '{NAME}'",
        order_by=[{"field_name": "metrics.best_val_accuracy", "ascending": False}],
    )
    # The kept checkpoints, ranked by the objective, and the champion's refit (trained on the
    # validation split too, so it has no val_* metrics to rank by).
    names = [m.name for m in models if re.fullmatch(rf"{NAME}-trial-\d{{3}}", m.name)]
    assert len(names) == KEEP and [m.name for m in models][KEEP:] == [f"{NAME}-refit"], [m.name for m in models]
    from tracking.note import experiment_link

    _open(browser, sweep["base"] + experiment_link(sweep["experiment"].experiment_id, "/models"))
    shown = [*names, f"{NAME}-refit"]
    browser.wait_for(lambda t: all(n in t for n in shown), PAGE_S, f"the kept checkpoints and the refit {shown}")
    source = browser.text()  # the attribute columns, in view before the scroll
    _tidy(browser)
    # The grid draws only the columns in view: scrolled to the metrics (the names stay, pinned).
    browser.wait_for_js(_SCROLL_TO_METRICS, PAGE_S, "the metric columns")
    text = browser.wait_for(lambda t: "best_val_accuracy" in t, PAGE_S, "the objective's column")
    _shot(browser, tmp_path, "ui-models.png")
    assert [text.index(n) for n in names] == sorted(text.index(n) for n in names), "not ranked by the objective"
    digest = sweep["parent"].data.tags["dataset.digest"]
    assert f"(#{digest})" in text and "val_loss" in text  # the metrics, under the dataset version
    values = {m.key: m.value for m in models[0].metrics}
    assert repr(values["best_val_accuracy"])[:6] in text, text  # the champion's objective, as stored
    assert f"python -m sweeps run name={NAME}" in source and "__main__.py" not in source  # its source: the command


_SCROLL_TO_METRICS = """(() => { const cells = [...document.querySelectorAll('[role=columnheader][col-id^="metrics."]')];
  const scroller = document.querySelector('.ag-body-horizontal-scroll-viewport');
  if (!cells.length || !scroller) return null;
  scroller.scrollLeft = Math.min(...cells.map(c => c.offsetLeft));
  scroller.dispatchEvent(new Event('scroll'));
  return true })()"""


def test_the_parent_runs_page_tells_the_story(browser, sweep, tmp_path):
    import optuna

    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{sweep['out'] / 'optuna.db'}")
    best = study.best_trial
    assert sweep["run_page"].endswith(f"/runs/{sweep['parent'].info.run_id}?workflowType=machine_learning")
    champion = f"{NAME}-refit"  # refit=true (the default): the champion is retrained on train + validation
    _open(browser, sweep["run_page"])
    text = browser.wait_for(
        lambda t: "Best trial #" in t and champion in t and "digits-conv2d" in t, PAGE_S, "the best trial and the champion"
    )
    assert "Logged models (1)" in text  # the champion, its registered version beside it
    assert f"Best trial #{best.number}: val_accuracy = {best.value:.4f} (max)" in text, text[:3000]
    assert f"{N_TRIALS} trials: {N_TRIALS} completed" in text
    assert sweep["parent"].data.tags["dataset.digest"] in text and f"python -m sweeps run name={NAME}-again" in text
    browser.evaluate("[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Show more')?.click()")
    _tidy(browser)
    _shot(browser, tmp_path, "ui-parent-run.png")


def test_a_report_png_renders_as_an_artifact(browser, sweep, tmp_path):
    parent = sweep["parent"].info.run_id
    logged = {a.path for a in sweep["client"].list_artifacts(parent, "report")}
    assert "report/optimization_history.png" in logged and "report/optimization_history.html" in logged
    from tracking.note import artifact_link

    _open(browser, sweep["base"] + artifact_link(sweep["experiment"].experiment_id, parent, "report/optimization_history.png"))
    size = browser.wait_for_js(
        "(() => { const i = [...document.querySelectorAll('img')].find(i => i.src.startsWith('blob:') && i.naturalWidth > 300);"
        " return i ? [i.naturalWidth, i.naturalHeight] : null })()",
        PAGE_S,
        "the PNG, decoded by the browser",
    )
    assert size[1] > 200
    _tidy(browser)
    _shot(browser, tmp_path, "ui-report-artifact.png")


def test_a_trial_run_has_system_metrics(browser, sweep, tmp_path):
    trial = sweep["trials"][0]
    history = sweep["client"].get_metric_history(trial.info.run_id, "system/cpu_utilization_percentage")
    assert [m.step for m in history] == list(range(1, EPOCHS + 1)) and all(m.value > 0 for m in history)
    memory = sweep["client"].get_metric_history(trial.info.run_id, "system/system_memory_usage_megabytes")
    assert all(m.value > 100 for m in memory)  # a worker with TensorFlow loaded holds hundreds of MB
    from tracking.note import run_link

    _open(browser, sweep["base"] + run_link(sweep["experiment"].experiment_id, trial.info.run_id, "/system-metrics"))
    text = browser.wait_for(
        lambda t: "cpu_utilization_percentage" in t and "system_memory_usage_megabytes" in t, PAGE_S, "the system metrics charts"
    )
    assert trial.info.run_name in text
    # Each chart drawn (plotly), with its line: the values arrived, not only the names.
    browser.wait_for_js(
        "document.querySelectorAll('.scatterlayer .trace').length >= 3", PAGE_S, "three drawn system-metrics charts"
    )
    _tidy(browser)
    _shot(browser, tmp_path, "ui-system-metrics.png")


# ---------------------------------------------------------------- optuna-dashboard


def test_the_dashboard_shows_the_studys_trials(browser, sweep, tmp_path):
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        _missing("optuna-dashboard", "pip install -e '.[test]'")
    log = sweep["root"] / "dashboard.log"
    server = _start(["dashboard", NAME, f"output_dir={sweep['out']}", "--port", str(_free_port())], sweep["root"], log)
    try:
        url = _printed_url(log, server, r"http://127\.0\.0\.1:\d+/dashboard/studies/\d+")
        _open(browser, url + "/trials")
        browser.wait_for(
            lambda t: all(f"Trial {n}" in t for n in range(N_TRIALS)), PAGE_S, f"trials 0..{N_TRIALS - 1} in the list"
        )
        _open(browser, url)
        browser.wait_for(lambda t: NAME in t and "Hyperparameter Importance" in t, PAGE_S, "the study's history and importances")
        _shot(browser, tmp_path, "optuna-dashboard.png")
    finally:
        _stop(server)
