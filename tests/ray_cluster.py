"""A real Ray cluster on loopback for tests: free ports, its own temp dir, stopped by process id.

Never `ray stop`: it kills every Ray process of the machine by name, other runs' included.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

RAY = Path(sys.executable).with_name("ray")
PORT_FLAGS = (
    "--port",
    "--dashboard-port",
    "--ray-client-server-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
    "--node-manager-port",
    "--object-manager-port",
)
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class Head:
    gcs_address: str
    dashboard_url: str
    env: dict[str, str]
    log: Path


def _free_ports(count: int) -> list[int]:
    # Held open together so that no two flags get the same port.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                table[int(entry)] = int(fields[1])
    return table


def _descendants(root: int) -> set[int]:
    table, found, frontier = _parents(), set(), [root]
    while frontier:
        parent = frontier.pop()
        children = {pid for pid, ppid in table.items() if ppid == parent} - found
        found |= children
        frontier.extend(children)
    return found


def _alive(pids: set[int]) -> set[int]:
    return pids & set(_parents())


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_until_serving(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (token auth may refuse this anonymous probe): it is up
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the Ray dashboard did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> set[int]:
    """Stop the head: SIGTERM to `ray start --block` (it drains and ends its children), then SIGKILL
    whatever of its process tree is left. Returns the pids that are still alive."""
    tree = _descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in _alive(tree):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    return _alive(tree)


def _dashboard_dependency_error(env: dict[str, str]) -> str:
    code = "import ray._private.utils as u; e = u.get_dashboard_dependency_error(); print(e or '')"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout.strip()
