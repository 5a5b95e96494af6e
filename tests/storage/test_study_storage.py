"""The Optuna study behind Optuna's gRPC storage proxy, as several machines would share it."""

import socket
import subprocess
import sys
import time

import optuna
import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_sweep_with_its_study_behind_a_grpc_proxy(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "shared-study.db"
    code = (
        f"import optuna; optuna.storages.run_grpc_proxy_server("
        f"optuna.storages.RDBStorage('sqlite:///{db}'), host='127.0.0.1', port={port})"
    )
    proxy = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert proxy.poll() is None and time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.5)
        result = run_cli(
            "run",
            "name=grpc",
            "n_trials=2",
            "max_epochs=1",
            "dataset.limit=200",
            "scheduler=none",
            "resources.num_cpus=2",
            "tracking.log_best_model=false",
            f"tracking.study_storage=grpc://127.0.0.1:{port}",
            f"output_dir={tmp_path}/out",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert f"grpc://127.0.0.1:{port}" in result.stdout
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    study = optuna.load_study(study_name="grpc", storage=f"sqlite:///{db}")  # the proxy's own database
    assert len(study.trials) == 2 and all(t.state.is_finished() for t in study.trials)
    assert not (tmp_path / "out" / "optuna.db").exists()
