"""System metrics of one trial, measured in its worker and shipped with each epoch's report.

The driver's single MLflow writer logs them on the trial's run under MLflow's own names
(`system/...`, as `mlflow.system_metrics` writes them), so the UI's "System metrics" tab charts
them; MLflow's own monitor would write from the worker, beside that writer, and measures the whole
machine, not the trial. Per epoch:

- `system/cpu_utilization_percentage`: CPU time of the worker process (every thread) over the
  epoch's wall time, as a share of the cores the trial was given (above 100: it used more);
- `system/system_memory_usage_megabytes`, `..._percentage`: the worker's peak resident memory
  during the epoch, and that as a share of the machine's memory;
- `system/gpu_<i>_utilization_percentage`, `system/gpu_<i>_memory_usage_megabytes`, `..._percentage`
  for each GPU the trial was given (NVML; the device's figures, as MLflow's monitor reports them).

CPU time is exact (the kernel counts it); memory and GPU are sampled by one daemon thread every
`interval_s`. No psutil: /proc and os.times (Linux) are enough for one process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

PREFIX = "system/"
CPU = PREFIX + "cpu_utilization_percentage"
MEMORY_MB = PREFIX + "system_memory_usage_megabytes"
MEMORY_PERCENT = PREFIX + "system_memory_usage_percentage"


def gpu_keys(index: int) -> tuple[str, str, str]:
    return (
        f"{PREFIX}gpu_{index}_utilization_percentage",
        f"{PREFIX}gpu_{index}_memory_usage_megabytes",
        f"{PREFIX}gpu_{index}_memory_usage_percentage",
    )


def system_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The system metrics in a trial's report (the driver logs these as they are)."""
    return {k: v for k, v in result.items() if k.startswith(PREFIX)}


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4096


_PAGE = _page_size()


def rss_bytes() -> int:
    """Resident memory of this process (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class _Gpus:
    """The GPUs this worker may use (CUDA_VISIBLE_DEVICES, as Ray sets it), through NVML."""

    def __init__(self) -> None:
        self.handles: list[tuple[int, Any]] = []
        self.nvml: Any = None
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and not visible.strip():
            return  # Ray gave this trial no GPU
        try:
            try:
                import pynvml as nvml  # nvidia-ml-py, where installed
            except ImportError:
                from ray._private.thirdparty import pynvml as nvml  # the copy Ray ships
            nvml.nvmlInit()
        except Exception:  # no driver, no library, no GPU: nothing to sample
            return
        self.nvml = nvml
        try:
            wanted = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in range(nvml.nvmlDeviceGetCount())]
            for entry in wanted:
                handle = (
                    nvml.nvmlDeviceGetHandleByUUID(entry) if not entry.isdigit() else nvml.nvmlDeviceGetHandleByIndex(int(entry))
                )
                self.handles.append((int(nvml.nvmlDeviceGetIndex(handle)), handle))
        except Exception:
            self.handles = []

    def sample(self) -> dict[int, tuple[float, float, float]]:
        """index -> (utilisation %, memory used MB, memory used %)."""
        out = {}
        for index, handle in self.handles:
            try:
                util = self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:
                continue
            out[index] = (float(util), memory.used / 1e6, 100.0 * memory.used / memory.total if memory.total else 0.0)
        return out

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass


@dataclass
class _Window:
    """What the samples since the last `take` add up to."""

    peak_rss: int = 0
    gpu: dict[int, list[tuple[float, float, float]]] = field(default_factory=dict)


class Sampler:
    """Samples this process while a trial trains; `take()` returns the metrics since its last call."""

    def __init__(self, cpus: float, interval_s: float = 1.0) -> None:
        self.cpus, self.interval_s = max(float(cpus), 1e-9), interval_s
        self.total_memory = total_memory_bytes()
        self.gpus = _Gpus()
        self._lock = threading.Lock()
        self._window = _Window()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since_wall, self._since_cpu = time.monotonic(), _cpu_seconds()
        self.own_cpu_s = 0.0  # CPU time the sampling thread itself used (for the overhead figure)

    def start(self) -> Sampler:
        self._since_wall, self._since_cpu = time.monotonic(), _cpu_seconds()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="sweeps-sysmetrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.gpus.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            began = time.thread_time()
            self._sample()
            self.own_cpu_s += time.thread_time() - began

    def _sample(self) -> None:
        rss, gpus = rss_bytes(), self.gpus.sample()
        with self._lock:
            self._window.peak_rss = max(self._window.peak_rss, rss)
            for index, values in gpus.items():
                self._window.gpu.setdefault(index, []).append(values)

    def take(self) -> dict[str, float]:
        """The metrics of the interval since the last take (or start): one epoch."""
        self._sample()  # an epoch shorter than the interval still gets a sample
        now, cpu = time.monotonic(), _cpu_seconds()
        with self._lock:
            window, self._window = self._window, _Window()
        wall = max(now - self._since_wall, 1e-9)
        metrics = {CPU: 100.0 * (cpu - self._since_cpu) / wall / self.cpus, MEMORY_MB: window.peak_rss / 1e6}
        self._since_wall, self._since_cpu = now, cpu
        if self.total_memory:
            metrics[MEMORY_PERCENT] = 100.0 * window.peak_rss / self.total_memory
        for index, samples in window.gpu.items():
            util, memory_mb, memory_percent = gpu_keys(index)
            metrics[util] = sum(s[0] for s in samples) / len(samples)
            metrics[memory_mb] = max(s[1] for s in samples)
            metrics[memory_percent] = max(s[2] for s in samples)
        return metrics


class Reporting:
    """Ray Tune's `report`, with the epoch's system metrics added; everything else is Tune's own.

    Handed to the training loop in place of `ray.tune`, so the loop stays as it is."""

    def __init__(self, tune: Any, sampler: Sampler) -> None:
        self._tune, self._sampler = tune, sampler

    def report(self, metrics: dict[str, Any], **kwargs: Any) -> None:
        self._tune.report({**metrics, **self._sampler.take()}, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tune, name)


@contextmanager
def sampling(tune: Any, cpus: float, interval_s: float = 1.0) -> Iterator[Reporting]:
    """`tune` whose reports carry the trial's system metrics, sampled while the block runs."""
    sampler = Sampler(cpus, interval_s).start()
    try:
        yield Reporting(tune, sampler)
    finally:
        sampler.stop()
