"""A real three-node Ray cluster on loopback (a head and two worker nodes, separate processes), a
sweep submitted through the Jobs API, trials spread over the nodes that offer a stand-in GPU."""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sweeps.commands.submit import submit
from tests.conftest import MLFLOW_PASSWORD
from tests.ray_cluster import PORT_FLAGS, RAY, _free_ports, _listening, _stop, _wait_until_serving

pytestmark = [pytest.mark.slow, pytest.mark.ray]
# Ports a worker node opens for itself (the head's --port and dashboard are the head's alone).
NODE_PORT_FLAGS = (
    "--node-manager-port",
    "--object-manager-port",
    "--metrics-export-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env |= {"PATH": f"{RAY.parent}{os.pathsep}{env.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0"}
    temp_dir = Path(tempfile.mkdtemp(prefix="rmn-", dir="/tmp"))
    token = temp_dir / "auth_token"
    token.write_text(secrets.token_hex(32))
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    # The nodes hold the tracking server's credentials in their environment, as a cluster's admin sets them.
    env |= {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": MLFLOW_PASSWORD}
    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS))))
    # The head runs the sweep's driver only: no CPU for trials, no stand-in GPU.
    head = _start(
        [
            str(RAY),
            "start",
            "--head",
            "--block",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--num-gpus=0",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
            *(f"{flag}={port}" for flag, port in ports.items()),
        ],
        env,
        temp_dir / "head.log",
    )
    procs = [head]
    dashboard = f"http://127.0.0.1:{ports['--dashboard-port']}"
    try:
        _wait_until_serving(dashboard, head, temp_dir / "head.log")
        # All at once: ports picked one node at a time could repeat before a node binds them.
        all_ports = _free_ports(2 * len(NODE_PORT_FLAGS))
        for i in (1, 2):
            node_ports = all_ports[(i - 1) * len(NODE_PORT_FLAGS) : i * len(NODE_PORT_FLAGS)]
            procs.append(
                _start(
                    [
                        str(RAY),
                        "start",
                        "--block",
                        f"--address=127.0.0.1:{ports['--port']}",
                        "--node-ip-address=127.0.0.1",
                        "--num-cpus=1",
                        "--num-gpus=0",
                        '--resources={"fake_gpu": 1}',
                        "--disable-usage-stats",
                        # Its own folder, as a separate machine has: nodes sharing one would garbage-collect
                        # each other's runtime-env packages (the job's working_dir among them).
                        f"--temp-dir={temp_dir / f'n{i}'}",
                        *(f"{flag}={port}" for flag, port in zip(NODE_PORT_FLAGS, node_ports)),
                    ],
                    env,
                    temp_dir / f"node{i}.log",
                )
            )
            # One at a time: two nodes joining at once on one host race for the session's files.
            _wait_for_nodes(f"127.0.0.1:{ports['--port']}", env, 1 + i, temp_dir)
        yield dashboard, env
    finally:
        left = set()
        for proc in reversed(procs):
            left |= _stop(proc)
        try:
            assert not left, f"processes of the test's Ray cluster survived: {sorted(left)}"
            assert not _listening(ports["--port"]) and not _listening(ports["--dashboard-port"])
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_nodes(gcs: str, env: dict[str, str], count: int, logs: Path) -> None:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = subprocess.run([str(RAY), "status", "--address", gcs], capture_output=True, text=True, env=env, timeout=60)
        if status.stdout.count("node_") >= count:
            return
        time.sleep(2)
    tails = "\n".join(f"{p.name}: {p.read_text()[-700:]}" for p in sorted(logs.glob("node*.log")))
    pytest.fail(f"the cluster did not reach {count} nodes:\n{status.stdout}\n{tails}")


def test_trials_spread_over_the_nodes(cluster, mlflow_server, tmp_path, monkeypatch):
    dashboard, env = cluster
    server_url, _ = mlflow_server
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(key, env[key])
    out = tmp_path / "outputs"
    sweep = [
        "name=multi",
        "n_trials=4",
        "max_epochs=2",
        "dataset.limit=200",
        "scheduler=none",
        "sampler=random",
        "space.padding=same",
        "resources.cpus_per_trial=1",
        "+resources.custom.fake_gpu=1",
        f"tracking.uri={server_url}",
        f"output_dir={out}",
    ]
    log = io.StringIO()
    assert submit(sweep, dashboard, follow=True, out=log) == 0, log.getvalue()[-4000:]

    study = optuna.load_study(study_name="multi", storage=f"sqlite:///{out / 'optuna.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_PASSWORD)
    client = MlflowClient(server_url)  # every record went to the tracking server
    exp = client.get_experiment_by_name("sweeps").experiment_id
    parent = next(r for r in client.search_runs([exp]) if r.data.tags.get("sweeps.name") == "multi")
    runs = [r for r in client.search_runs([exp]) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(study.trials) == len(runs) == 4
    assert all(t.state.is_finished() for t in study.trials) and all(r.info.status == "FINISHED" for r in runs)
    nodes = {r.data.tags["sweeps.node_id"] for r in runs}
    assert len(nodes) == 2, nodes  # both worker nodes trained; the head (no fake_gpu) none
    metrics = parent.data.metrics
    # Measured, not derived: the nodes whose trials reported (their own node ids) and the size of the
    # arrays put into the object store, against the dataset loaded here on its own.
    from sweeps.data.datasets import load_dataset

    data = load_dataset("digits", val_fraction=0.2, limit=200, seed=0).arrays()
    assert metrics["data_nodes"] == len(nodes) == 2
    assert metrics["data_bytes"] == sum(a.nbytes for a in data.values())
    assert "data_bytes_per_trial" not in metrics  # a formula, never a measurement: not recorded
