"""Timing probe for the product's processes (driver and Ray workers); measurement only.

Put this folder on PYTHONPATH and set BENCH_PROBE_DIR: every Python process that starts then
(the `python -m sweeps run` driver and the Ray workers it spawns, which inherit the environment)
appends one JSON line per timed call to BENCH_PROBE_DIR/<pid>.jsonl. Nothing in the product's
source changes; functions are wrapped after their module has been imported:

  keras                 import time of keras (TensorFlow with it); Model.fit, Model.save,
                        keras.backend.clear_session
  gc                    gc.collect, when called inside a Tune trial
  models.conv2d         build_conv2d (model construction and compile)
  tensorflow            import time
  sweeps.worker.trainable          train_trial (the whole worker-side trial; its start separately)
  sweeps.driver.sweep          load_dataset, _check_feasible, _check_study_storage, _prepare_output, _summarise,
                        _log_report (driver; whichever exist)
  ray.tune              tune.report (with a checkpoint: persisting it to storage)
  tracking.tracker      every public SweepTracker method (MLflow writes, driver side)
  ray.tune.search.optuna.optuna_search   OptunaSearch.suggest / on_trial_result / on_trial_complete
  sweeps.execution.search         SweepSearch.on_trial_complete (Optuna's tell into its sqlite study),
                        start_ray, run_sweep, shutdown; with BENCH_SIMULATE_EPOCH_S set, its trainable
                        becomes benchmarks.simulated.simulated_trial (python -m benchmarks scale only)
and, once per process, a "process" event from the process's start to this file's import.

Memory (opt-in, the driver only): with BENCH_MEMORY_EVERY=N, every N finished trials (and around
Tune's experiment-state snapshot `TuneController.save_to_dir`, and after run_sweep) one line goes
to BENCH_PROBE_DIR/memory.jsonl: trials finished, VmRSS and VmHWM. With BENCH_TRACEMALLOC=F as
well, tracemalloc starts (F frames) at the first such point, and at each later one the 30 biggest
growers since then, by traceback, go to BENCH_PROBE_DIR/tracemalloc-<trials>.txt, beside the
Python object counts by type that grew most (gc.get_objects).

Without BENCH_PROBE_DIR this file does nothing.
"""

from __future__ import annotations

import os
import sys

_DIR = os.environ.get("BENCH_PROBE_DIR")


def _install() -> None:
    import functools
    import importlib.abc
    import json
    import threading
    import time

    lock = threading.Lock()
    path = os.path.join(_DIR, f"{os.getpid()}.jsonl")
    handle: list = []

    def trial_id() -> str | None:
        if "ray.tune" not in sys.modules:
            return None
        try:
            return sys.modules["ray.tune"].get_context().get_trial_id()
        except Exception:  # noqa: BLE001 - outside a Tune trial
            return None

    def emit(kind: str, t0: float, t1: float, trial: str | None = None, **extra: object) -> None:
        record = {
            "kind": kind,
            "t0": t0,
            "t1": t1,
            "pid": os.getpid(),
            "tid": threading.get_ident(),
            "trial": trial or trial_id(),
            **extra,
        }
        line = json.dumps(record, default=str)
        with lock:  # one open file, line-buffered: a write per event, not an open and a close
            if not handle:
                handle.append(open(path, "a", buffering=1))
            handle[0].write(line + "\n")

    def timed(kind: str, fn, extra=None):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0, c0 = time.time(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                # cpu: this thread's CPU seconds in the span, which a loaded machine stretches less than the wall
                emit(kind, t0, time.time(), cpu=time.thread_time() - c0, **(extra(args, kwargs) if extra else {}))

        return wrapper

    def patch_keras(mod) -> None:  # type: ignore[no-untyped-def]
        model = mod.Model
        model.fit = timed("fit", model.fit, lambda a, k: {"epoch": k.get("epochs")})
        model.save = timed("save", model.save)
        mod.backend.clear_session = timed("clear_session", mod.backend.clear_session)

    import gc

    collect = gc.collect

    @functools.wraps(collect)
    def timed_collect(*args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.time()
        try:
            return collect(*args, **kwargs)
        finally:
            trial = trial_id()
            if trial:  # only the collections a trial asks for (Ray and TF call it too)
                emit("gc_collect", t0, time.time(), trial)

    gc.collect = timed_collect

    def patch_conv2d(mod) -> None:  # type: ignore[no-untyped-def]
        mod.build_conv2d = timed("build", mod.build_conv2d)

    def patch_trial(mod) -> None:  # type: ignore[no-untyped-def]
        inner = mod.train_trial

        @functools.wraps(inner)
        def train_trial(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.time()
            trial = trial_id()
            emit("trial_begin", t0, t0, trial)  # a trial stopped early by the scheduler never returns
            try:
                return inner(*args, **kwargs)
            finally:
                emit("trial", t0, time.time(), trial)

        mod.train_trial = train_trial

    def patch_tune(mod) -> None:  # type: ignore[no-untyped-def]
        mod.report = timed("report", mod.report, lambda a, k: {"checkpoint": k.get("checkpoint") is not None})

    def queue_depth(args, kwargs):  # type: ignore[no-untyped-def]
        writes = getattr(args[0], "writes", None) if args else None
        return {"queue": writes.queued() if writes is not None else 0}

    def patch_tracker(mod) -> None:  # type: ignore[no-untyped-def]
        cls = mod.SweepTracker
        for name, value in list(vars(cls).items()):
            if callable(value) and (not name.startswith("_") or name == "__init__"):
                setattr(cls, name, timed(f"mlflow.{name}", value, queue_depth if name == "log_metrics" else None))

    def patch_schedulers(mod) -> None:  # type: ignore[no-untyped-def]
        for cls in (mod.ASHAScheduler, mod.FIFOScheduler):
            for name in ("on_trial_result", "choose_trial_to_run"):
                if name in vars(cls):
                    setattr(cls, name, timed(f"scheduler.{name}", vars(cls)[name]))

    def patch_progress(mod) -> None:  # type: ignore[no-untyped-def]
        for name in ("trial_started", "trial_finished"):
            setattr(mod.Progress, name, timed(f"progress.{name}", getattr(mod.Progress, name)))

    def patch_optuna_search(mod) -> None:  # type: ignore[no-untyped-def]
        cls = mod.OptunaSearch
        for name in ("suggest", "on_trial_result", "on_trial_complete"):
            setattr(cls, name, timed(f"searcher.{name}", getattr(cls, name)))

    def patch_runner(mod) -> None:  # type: ignore[no-untyped-def]
        if os.environ.get("BENCH_SIMULATE_EPOCH_S"):  # python -m benchmarks scale: no training, see benchmarks/simulated.py
            from benchmarks.simulated import simulated_trial

            mod.train_trial = simulated_trial
        cls = mod.SweepSearch
        # SweepSearch has its own suggest (the feasibility redraws): OptunaSearch's patched one is not called.
        cls.suggest = timed("searcher.suggest", cls.suggest)
        cls.on_trial_complete = timed("searcher.tell", cls.on_trial_complete)
        cls.on_trial_result = timed("searcher.result", cls.on_trial_result)
        # The product's Tune callbacks, whole: what they do besides MLflow's calls (timed inside
        # them, and subtracted: scale.py counts each span's own time) is Optuna's trial records.
        for callback in (getattr(mod, n, None) for n in ("TrackingCallback", "KeepBestCheckpoints", "WarmDriverImport")):
            for name, value in list(vars(callback or object).items()):
                if name.startswith("on_") and callable(value):
                    setattr(callback, name, timed(f"callback.{callback.__name__}.{name}", value))
        for name in ("start_ray", "run_sweep", "shutdown"):
            if hasattr(mod, name):
                setattr(mod, name, timed(f"runner.{name}", getattr(mod, name)))

    def patch_runtime(mod) -> None:  # type: ignore[no-untyped-def]
        for name in ("start_ray", "shutdown"):  # the driver's calls (run_sweep's own go through patch_runner)
            if hasattr(mod, name):
                setattr(mod, name, timed(f"runner.{name}", getattr(mod, name)))

    def patch_sweep(mod) -> None:  # type: ignore[no-untyped-def]
        for name in ("load_dataset", "_check_feasible", "_check_study_storage", "_prepare_output", "_summarise", "_log_report"):
            if hasattr(mod, name):  # the product changes: time what exists
                setattr(mod, name, timed(f"sweep.{name.lstrip('_')}", getattr(mod, name)))
        for name in ("_summarise", "_log_report") if memory_every else ():
            if hasattr(mod, name):
                setattr(mod, name, after_memory_point(f"{name.lstrip('_')} end", getattr(mod, name)))

    def after_memory_point(label: str, fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return fn(*args, **kwargs)
            finally:
                memory_point(label)

        return wrapper

    def patch_nothing(mod) -> None:  # type: ignore[no-untyped-def]
        return None

    memory_every = int(os.environ.get("BENCH_MEMORY_EVERY", "0"))
    frames = int(os.environ.get("BENCH_TRACEMALLOC", "0"))
    memory: dict = {"finished": 0}

    def vm() -> dict:
        found = {}
        with open(f"/proc/{os.getpid()}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    found[line.split(":")[0]] = int(line.split()[1]) / 1024.0  # MiB
        return found

    def memory_point(label: str) -> None:
        record = {"label": label, "t": time.time(), "finished": memory["finished"], **vm()}
        with lock:
            with open(os.path.join(_DIR, "memory.jsonl"), "a") as fh:
                fh.write(json.dumps(record) + "\n")
        if not frames or label != "finished":
            return
        import collections
        import gc as gc_module
        import tracemalloc

        types = collections.Counter(type(o).__qualname__ for o in gc_module.get_objects())
        if "snapshot" not in memory:
            tracemalloc.start(frames)
            memory["snapshot"], memory["types"] = tracemalloc.take_snapshot(), types
            return
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*")]
        )
        diff = snapshot.compare_to(memory["snapshot"], "traceback")
        grown = (types - memory["types"]).most_common(30)
        with open(os.path.join(_DIR, f"tracemalloc-{memory['finished']}.txt"), "w") as fh:
            fh.write(f"{memory['finished']} trials finished, {record}\n")
            fh.write("objects by type, grown since the first point: " + ", ".join(f"{k} +{v}" for k, v in grown) + "\n\n")
            for stat in diff[:30]:
                fh.write(f"{stat.size_diff / 1e6:+.2f} MB in {stat.count_diff:+d} blocks\n")
                fh.write("\n".join("    " + line for line in stat.traceback.format()[-2 * frames :]) + "\n")

    def patch_memory_runner(mod) -> None:  # type: ignore[no-untyped-def]
        for name in ("on_trial_complete", "on_trial_error"):
            inner = getattr(mod.TrackingCallback, name)

            def finished(*args, __inner=inner, **kwargs):  # type: ignore[no-untyped-def]
                try:
                    return __inner(*args, **kwargs)
                finally:
                    memory["finished"] += 1
                    if memory["finished"] % memory_every == 0:
                        memory_point("finished")

            setattr(mod.TrackingCallback, name, finished)
        inner_run = mod.run_sweep

        @functools.wraps(inner_run)
        def run_sweep(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return inner_run(*args, **kwargs)
            finally:
                memory_point("run_sweep end")

        mod.run_sweep = run_sweep

    def patch_controller(mod) -> None:  # type: ignore[no-untyped-def]
        inner = mod.TuneController.save_to_dir

        @functools.wraps(inner)
        def save_to_dir(*args, **kwargs):  # type: ignore[no-untyped-def]
            memory_point("save_to_dir before")
            try:
                return inner(*args, **kwargs)
            finally:
                memory_point("save_to_dir after")

        mod.TuneController.save_to_dir = save_to_dir

    def patch_runner_and_memory(mod) -> None:  # type: ignore[no-untyped-def]
        patch_runner(mod)
        if memory_every:
            patch_memory_runner(mod)

    patches = {
        "sweeps.execution.runner": patch_runner_and_memory,
        **({"ray.tune.execution.tune_controller": patch_controller} if memory_every else {}),
        "sweeps.execution.runtime": patch_runtime,
        "sweeps.driver.sweep": patch_sweep,
        "tensorflow": patch_nothing,
        "keras": patch_keras,
        "models.conv2d": patch_conv2d,
        "sweeps.worker.trainable": patch_trial,
        "ray.tune": patch_tune,
        "tracking.tracker": patch_tracker,
        "ray.tune.schedulers": patch_schedulers,
        "sweeps.driver.progress": patch_progress,
        "ray.tune.search.optuna.optuna_search": patch_optuna_search,
    }

    class PostImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
            if name not in patches:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
            else:
                return None
            loader = spec.loader
            if loader is None or not hasattr(loader, "exec_module"):
                return spec
            original = loader.exec_module

            def exec_module(module):  # type: ignore[no-untyped-def]
                t0 = time.time()
                original(module)
                if name in ("keras", "tensorflow"):
                    emit(f"import_{name}", t0, time.time())
                try:
                    patches[name](module)
                except Exception as exc:  # noqa: BLE001 - never break the product
                    emit("probe_error", t0, time.time(), module=name, error=repr(exc))

            loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, PostImport())
    try:  # when this process started (a Ray worker's start is the cost of a fresh actor)
        started = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC) + _proc_start_monotonic()
    except Exception:  # noqa: BLE001 - not Linux
        started = time.time()
    emit("process", started, time.time(), argv=" ".join(sys.argv[:3])[:200])


def _proc_start_monotonic() -> float:
    """This process's start on the monotonic clock (Linux /proc: field 22, in clock ticks since boot)."""
    with open(f"/proc/{os.getpid()}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


if _DIR:
    _install()
