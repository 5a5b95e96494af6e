"""A local sweep's Ray starts no dashboard process: Ray 2.60 starts one even with
include_dashboard=False and `ray.init` waits until it answers (benchmarks/startup.py measures it)."""

import pytest

from sweeps.config.validation import load_config

pytestmark = pytest.mark.ray


def test_a_local_sweep_starts_ray_without_its_dashboard_process(tmp_path):
    import ray
    from ray._private import node, ray_constants

    from sweeps.execution import runtime as runner

    original = node.Node.start_api_server
    cfg = load_config(["resources.num_cpus=1", f"output_dir={tmp_path}"])
    try:
        total = runner.start_ray(cfg)
        processes = ray._private.worker._global_node.all_processes
        assert total["CPU"] == 1
        assert ray_constants.PROCESS_TYPE_DASHBOARD not in processes, list(processes)
        assert ray_constants.PROCESS_TYPE_RAYLET in processes  # the rest of Ray is there
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
    finally:
        runner.shutdown()
    assert node.Node.start_api_server is original  # only that one ray.init skipped it
