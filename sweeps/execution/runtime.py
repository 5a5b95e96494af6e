"""Ray's runtime: start it (or join a cluster), check a trial's resources and what every node sees, stop it.

The one place `ray.init` and `ray.shutdown` are called; also the /proc/mounts probe that tells a shared
output folder from a local one."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray

from sweeps.config.settings import SweepConfig
from sweeps.core.errors import ConfigError
from sweeps.testing import faults


def slots(cfg: SweepConfig, cluster_cpus: float) -> int:
    """How many trials run at once: the CPUs Ray has over the CPUs a trial takes."""
    return max(1, int(cluster_cpus // cfg.resources.cpus_per_trial))


@contextlib.contextmanager
def _without_api_server() -> Iterator[None]:
    """Ray 2.60 starts its dashboard process even with include_dashboard=False (the usage-stats
    module alone, no frontend), and `ray.init` polls until that process has written its address:
    a Python process importing aiohttp and the dashboard's modules on the critical path of every
    local sweep, competing for a small machine's cores (docs/performance.md has its measurement). A local
    sweep uses nothing it serves (no dashboard, job or state API), so `ray.init` starts it not.
    A cluster started by `ray start` keeps its own. Ray's private Node.start_api_server: where a
    Ray upgrade removes it, nothing is skipped."""
    from ray._private import node

    original = getattr(node.Node, "start_api_server", None)
    if original is None:
        yield
        return

    def skip(self: Any, *, include_dashboard: bool | None, raise_on_failure: bool) -> None:
        self._webui_url = ""  # as a minimal Ray install leaves it

    node.Node.start_api_server = skip
    try:
        yield
    finally:
        node.Node.start_api_server = original


def start_ray(cfg: SweepConfig) -> dict[str, float]:
    """Start (or join, with RAY_ADDRESS) Ray and check that one trial's resources exist at all,
    so a sweep asking for GPUs on a machine without any says so instead of waiting forever."""
    if not cfg.verbose:
        # Errors of trials stopped by the failure limit: already recorded, not worth a traceback.
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    on_cluster = bool(os.environ.get("RAY_ADDRESS"))
    if not ray.is_initialized():
        skipped = contextlib.nullcontext() if on_cluster else _without_api_server()
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore", **WORKER_ENV}
        env.update({k: os.environ[k] for k in (faults.ENV, faults.ENV_DIR) if k in os.environ})
        with skipped:
            ray.init(
                # "local": our own instance even when `ray start` left a cluster on this machine, which a
                # bare ray.init() would join (found in /tmp/ray/ray_current_cluster). Clusters: RAY_ADDRESS.
                address=None if on_cluster else "local",
                num_cpus=None if on_cluster else cfg.resources.num_cpus,
                include_dashboard=False,
                log_to_driver=cfg.verbose,
                logging_level="INFO" if cfg.verbose else "ERROR",
                # On a cluster the job's runtime env (its working_dir) must stay the driver's: a new one
                # here would drop the job's reference to that folder, and Ray would delete it under us.
                runtime_env=None if on_cluster else {"env_vars": env},
            )
    if not cfg.verbose:
        # A failed trial's traceback goes to its MLflow run; the terminal gets one progress line.
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    total = ray.cluster_resources()
    if on_cluster:
        _check_shared_output(cfg)
        return total  # a cluster's autoscaler may add the nodes a trial needs: let Tune wait for them
    for kind, field_name, wanted in (
        ("CPU", "cpus_per_trial", cfg.resources.cpus_per_trial),
        ("GPU", "gpus_per_trial", cfg.resources.gpus_per_trial),
    ):
        have = total.get(kind, 0.0)
        if wanted > have:
            shutdown()
            raise ConfigError(
                f"resources.{field_name}",
                f"a trial asks for {wanted:g} {kind} but the Ray cluster has {have:g}",
                f"set resources.{field_name}={have:g} or less"
                + (" (resources=cpu), or add GPU nodes to the cluster" if kind == "GPU" else ""),
            )
    return total


def _sees(paths: list[str]) -> tuple[str, list[str]]:
    import socket

    return socket.gethostname(), [p for p in paths if not os.path.isfile(p)]


def check_nodes_see(paths: list[str], folder: str) -> None:
    """Streamed data is read by every node that runs trials: ask each live node, before any trial,
    whether it sees `paths` (a few files of the folder); bad input, with the fix, if one does not."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_sees)
    nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]
    answers = ray.get(
        [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(paths) for node in nodes]
    )
    blind = [(host, missing) for host, missing in answers if missing]
    if blind:
        host, missing = blind[0]
        shutdown()
        raise ConfigError(
            "dataset.path",
            f"node {host} cannot see {missing[0]} ({len(blind)} of {len(nodes)} nodes cannot read {folder})",
            "put the folder on storage every node mounts (NFS, EFS, a FUSE bucket mount) at the same path, "
            "or raise dataset.memory_limit_mb so the driver loads it and sends the arrays",
        )


# A reused worker must wait for a trial that ASHA stopped to finish its current epoch before it
# takes the next trial; Tune's default wait is 2 s, after which the next trial errors and Tune
# 2.60 then hangs (its searcher never hears of that trial). An epoch on a loaded machine takes longer.
WORKER_ENV = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "600"}


NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "ceph", "glusterfs", "9p", "efs")


def _filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path` (longest mount point in /proc/mounts)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    target = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if (
            len(fields) >= 3
            and (target == fields[1] or target.startswith(fields[1].rstrip("/") + "/"))
            and len(fields[1]) > len(best)
        ):
            best, kind = fields[1], fields[2]
    return kind


def _check_shared_output(cfg: SweepConfig) -> None:
    """Tune writes checkpoints to output_dir from every node: on several machines it must be shared."""
    hosts = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
    kind = _filesystem_type(cfg.output_dir)
    if len(hosts) > 1 and not (kind in NETWORK_FILESYSTEMS or kind.startswith("fuse")):
        raise ConfigError(
            "output_dir",
            f"{cfg.output_dir} is on a local {kind} filesystem, but the cluster spans {len(hosts)} machines",
            "set output_dir to a folder every node mounts (NFS, EFS, a FUSE bucket mount)",
        )


def shutdown() -> None:
    """Stop Ray, in the calling thread. Not in the background while the summary is written: a
    Ray object freed in another thread while `ray.shutdown` tears the core worker down (a Tune
    trial's ObjectRef, collected at any moment) makes Ray's C++ end the process with exit code 1,
    nothing printed and nothing flushed (a sweep stopped by its failure limit lost its summary so)."""
    if ray.is_initialized():
        ray.shutdown()
