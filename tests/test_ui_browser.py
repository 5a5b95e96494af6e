"""The MLflow UI, in a real headless Chromium, shows a real sweep: its parent run and its trial runs.

Needs `/usr/bin/chromium` (Debian: `apt-get install -y chromium`); skipped without it.
`SWEEPS_UI_SCREENSHOT=docs/mlflow-ui.png python -m pytest tests/test_ui_browser.py` refreshes the
README's screenshot.
"""

import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.ray]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NAME = "digits-small"
N_TRIALS = 2
# The experiment page (#/experiments/<id>) opens on MLflow 3's GenAI overview, which lists no runs;
# the runs page nests trials under a collapsed parent unless sorted by something else than date.
RUNS_PAGE = "http://127.0.0.1:{port}/#/experiments/{experiment}/runs?orderByKey=tags.%60mlflow.runName%60&orderByAsc=true"

if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` (Debian) to run the UI test",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_ui(uri: str, port: int, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    return subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=(cwd / "mlflow-ui.log").open("w"), start_new_session=True,
    )


def _wait_for(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, f"mlflow ui exited {server.returncode}:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"mlflow ui did not answer {url} within {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A tiny real sweep; the MLflow UI is started on its store as soon as the parent run exists
    (while the trials run, as a user would), and answers once the sweep is done."""
    root = tmp_path_factory.mktemp("ui")
    out = root / "outputs"
    uri = f"sqlite:///{out / 'mlflow.db'}"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "run", f"name={NAME}", f"n_trials={N_TRIALS}", "max_epochs=1", "dataset.limit=200",
         "scheduler=none", "resources.num_cpus=2", "tracking.log_best_model=false", f"output_dir={out}"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    port, server, lines = _free_port(), None, []
    try:
        for line in sweep.stdout:
            lines.append(line)
            if server is None and f"Sweep {NAME}:" in line and "MLflow run" in line:  # the store and parent run exist
                server = _start_ui(uri, port, root)
        assert sweep.wait(timeout=300) == 0, "".join(lines)[-4000:]
        assert server is not None, "".join(lines)[-4000:]
        _wait_for(f"http://127.0.0.1:{port}/health", server, root / "mlflow-ui.log")
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("sweeps").experiment_id
        runs = client.search_runs([experiment])
        parent = next(r for r in runs if r.data.tags.get("sweeps.kind") == "sweep")
        trials = sorted(r.info.run_name for r in runs if r.data.tags.get("sweeps.kind") == "trial")
        yield {"port": port, "experiment": experiment, "parent": parent, "trials": trials, "root": root}
    finally:
        if sweep.poll() is None:
            sweep.kill()
        if server is not None:
            _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """End mlflow ui, its uvicorn and worker: the process group this test started, and nothing else."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=5)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(server.pid, signal.SIGKILL)  # whatever of the group is still there
    except ProcessLookupError:
        pass
    server.wait(timeout=10)


def _chromium(profile: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _visible_text(dom: str) -> str:
    """The rendered page's text: scripts, styles and tags dropped, whitespace folded."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def _words(text: str) -> set[str]:
    return set(text.split(" "))


@pytest.fixture(scope="module")
def rendered(ui, tmp_path_factory):
    """The runs page after Chromium ran its scripts: (visible text, screenshot), from one browser start."""
    tmp = tmp_path_factory.mktemp("chromium")
    png = tmp / "mlflow-ui.png"
    page = RUNS_PAGE.format(port=ui["port"], experiment=ui["experiment"])
    result = _chromium(tmp / "profile", "--dump-dom", f"--screenshot={png}", "--window-size=1400,900", page)
    return _visible_text(result.stdout), png


def test_runs_page_shows_the_sweep_and_its_trials(ui, rendered):
    text, _ = rendered
    assert "Training runs" in text, text[:2000]
    assert {NAME, *ui["trials"]} <= _words(text), text[:3000]
    assert len(ui["trials"]) == N_TRIALS and f"{1 + N_TRIALS} matching runs" in text
    assert ui["parent"].data.tags["dataset.digest"] in text  # the Dataset column: digits (<digest>)


def test_screenshot_of_the_runs_page(rendered):
    _, png = rendered
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a rendered page, not a blank one
    target = os.environ.get("SWEEPS_UI_SCREENSHOT")
    if target:
        shutil.copyfile(png, target)
