"""The terminal shows the product's own lines: no TensorFlow C++ start-up lines, no Optuna FutureWarning."""

import os
import subprocess
import sys
import warnings

import pytest

from tests.conftest import ROOT

NOISE = ("cudart_stub.cc", "absl::InitializeLog", "port.cc", "cpu_feature_guard")


def test_importing_the_model_builder_prints_no_tensorflow_start_up_lines():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    code = "import sys; import models.conv2d; print('after the import', file=sys.stderr)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not [word for word in NOISE if word in out.stderr], out.stderr
    assert out.stderr.strip() == "after the import"


def test_a_line_written_while_a_background_import_holds_fd_2_reaches_the_terminal_before_exit():
    """The driver's last stderr line (an error after the summary) while WarmDriverImport's Keras import
    still holds fd 2: `python -m sweeps` exits with os._exit, so the CLI waits for the import first."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    code = (
        "import os, sys, threading, time\n"
        "from models import native_log\n"
        "started = threading.Event()\n"
        "def slow_import():\n"
        "    with native_log.tensorflow_start_up_filtered():\n"
        "        started.set(); time.sleep(1.5)\n"
        "threading.Thread(target=slow_import, daemon=True).start(); started.wait()\n"
        "print('error: the last line', file=sys.stderr)\n"
        "native_log.wait_for_filtered_imports()\n"
        "os._exit(1)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert out.returncode == 1 and out.stderr == "error: the last line\n", out.stderr[-2000:]


@pytest.mark.parametrize(
    ("line", "noise"),
    [
        ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", True),
        ("I0000 00:00:1795729548.905712    8885 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n", True),
        ("W0000 00:00:1795729548.905712    8885 gpu_device.cc:2341] Cannot dlopen some GPU libraries.\n", True),
        ("To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow\n", True),
        ("E0000 00:00:1795729548.905712    8885 cuda_driver.cc:12] failed call to cuInit: UNKNOWN ERROR\n", False),
        ("error: n_trail: unknown setting. Fix: did you mean n_trials?\n", False),
        ("Traceback (most recent call last):\n", False),
    ],
)
def test_only_tensorflow_info_and_warning_lines_are_dropped(line, noise):
    from models.native_log import is_noise

    assert is_noise(line) is noise


@pytest.mark.parametrize("name", ["tpe", "random", "qmc", "cmaes", "nsga2"])
def test_samplers_are_built_without_warnings(name):
    from sweeps.config.settings import SamplerSettings
    from sweeps.samplers.factories import make_sampler

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_sampler(SamplerSettings(name, n_startup_trials=2, population_size=4), seed=0)
