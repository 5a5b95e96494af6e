"""Each resource has one owner that closes it: study storages (one per URL, closed by the command),
the tracker's writer thread (closed with the sweep's run)."""

import os
import threading
from pathlib import Path

import pytest


def _open_files(path: Path) -> int:
    target = str(path.resolve())
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            pass
    return count


def test_one_storage_per_url_and_closing_releases_its_connections(tmp_path):
    import optuna

    from sweeps.storage import storages as search

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="s", storage=search.open_storage(tmp_path, url))
    for _ in range(3):
        assert search.study_exists(tmp_path, "s", url)
    assert search.open_storage(tmp_path, url) is search.open_storage(tmp_path, None)  # the same file, one engine
    assert _open_files(tmp_path / "optuna.db") >= 1
    search.close_storages()
    assert _open_files(tmp_path / "optuna.db") == 0
    assert search.study_exists(tmp_path, "s", url)  # opened afresh after closing
    search.close_storages()


def test_the_tracker_writer_thread_ends_with_the_sweep_run(tmp_path):
    from tracking import RunStatus, SweepTracker

    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "e", tmp_path / "art")
    run = tracker.start_sweep("s", {"a": 1}, {}, "a: 1\n")
    tracker.log_metrics(run, {"m": 1.0}, step=1)
    assert any(t.name.startswith("mlflow-writer") for t in threading.enumerate())
    tracker.end_sweep({"n": 2.0}, {}, RunStatus.FINISHED)
    assert not any(t.name.startswith("mlflow-writer") and t.is_alive() for t in threading.enumerate())
    assert tracker.client.get_run(run).data.metrics == {"m": 1.0, "n": 2.0}  # every queued write landed


@pytest.mark.parametrize("fails_at", ["health", "second", "refuses"])
def test_a_server_failing_between_the_two_requests_is_one_answer(fails_at):
    """A real HTTP server that answers /health and then drops the second request (or never answers)."""
    import http.server
    import socket

    from tracking import unreachable

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if fails_at == "refuses" and not self.path.startswith("/health"):
                self.send_response(401)
                self.end_headers()
                return
            if self.path.startswith("/health") and fails_at in ("second", "refuses"):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")
                return
            self.connection.shutdown(socket.SHUT_RDWR)  # the server fails: the connection drops

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://alice:s3cr3t@127.0.0.1:{server.server_port}"
        problem = unreachable(url, timeout_s=5)
    finally:
        server.shutdown()
    assert (
        problem is not None
        and ("wrong user or password in tracking.uri" if fails_at == "refuses" else "does not answer") in problem
    )
    assert "s3cr3t" not in problem and "alice:***@127.0.0.1" in problem


def test_a_pickled_storage_holds_no_password(tmp_path):
    """Ray Tune pickles its searcher, and the study storage with it, into the sweep's folder."""
    import pickle

    from sweeps.storage import storages as search

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = search.open_storage(tmp_path, url)
    storage.url = "postgresql://sweeps:hunter2@db/optuna"  # as a server's URL would be (no connection made)
    search._OPEN[storage.url] = search._OPEN.pop(url)
    try:
        data = pickle.dumps(storage.__getstate__())
        assert b"hunter2" not in data and b"sweeps:***@db" in data
    finally:
        storage.url = url
        search._OPEN[url] = search._OPEN.pop("postgresql://sweeps:hunter2@db/optuna")
        search.close_storages()
