"""Ray's runtime as the driver ends it after the trials."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.reliability]

# The driver's state after Tune: Ray objects it still holds, freed whenever Python gets to them.
# Freed while the core worker is torn down in another thread, one of them makes Ray's C++ end the
# process at once with exit code 1, printing nothing more (runtime.shutdown's docstring).
FREE_REFS_AFTER_SHUTDOWN = """
import ray
from sweeps.execution import runtime

ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
refs = [ray.put(i) for i in range(20000)]
runtime.shutdown()
while refs:
    refs.pop()
print("survived", flush=True)
"""


def test_ray_objects_freed_after_the_driver_shuts_ray_down_do_not_end_the_process():
    done = subprocess.run([sys.executable, "-c", FREE_REFS_AFTER_SHUTDOWN], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "survived" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
