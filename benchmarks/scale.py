"""python -m benchmarks scale: the product's driver at many slots, against plain Ray Tune's own overhead.

Both run the same simulated trial (benchmarks/simulated.py: sleeps `epoch_s` per epoch, a
param-dependent learning curve), with Ray started with K logical CPUs on however few real cores,
so the workers mostly sleep and the driver's cost shows:

- the product: `python -m sweeps run` as a user runs it (TPE, ASHA, MLflow, Optuna's storage,
  progress, recovery bookkeeping), its trainable swapped by the timing probe (probe/sitecustomize.py);
- plain Ray Tune: Tuner + random search + FIFO, no tracking, in its own process.

Ideal time = sum over trials of epochs run x epoch_s / K (each tool's own epochs: ASHA runs fewer).
The driver's peak RSS (the `python -m sweeps run` process alone, not Ray's raylet, GCS or workers:
its VmHWM, polled from /proc) is taken at each trial count; with several (`--trials 1000,5000`) the
growth per 1,000 trials between them is the target (issue 22: under 50 MB per 1,000 trials, every
trial recorded in both stores). Figures go to benchmarks/results/scale.{txt,csv} with commit,
machine and date.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.peers import RAY_EQUAL_PRIORITY, child_env

ROOT = Path(__file__).resolve().parent.parent
PROBE_DIR = Path(__file__).resolve().parent / "probe"


@dataclass
class Run:
    tool: str
    slots: int
    trials: int
    epochs_run: int
    wall_s: float
    ideal_s: float
    recorded: str = ""
    driver_ms: dict[str, float] = field(default_factory=dict)  # per result, by part: wall
    driver_cpu_ms: dict[str, float] = field(default_factory=dict)  # per result, by part: the driver thread's CPU
    ask_ms: dict[int, float] = field(default_factory=dict)  # Optuna ask latency at trial n
    queue_max: int = 0
    disk_mb: float = 0.0
    peak_rss_mb: float = float("nan")  # the driver process's VmHWM (Linux), Ray's own processes left out

    @property
    def overhead_pct(self) -> float:
        return 100.0 * (self.wall_s / self.ideal_s - 1.0) if self.ideal_s else float("nan")

    @property
    def trials_per_hour(self) -> float:
        return self.trials / self.wall_s * 3600.0


def run_product(k: int, n: int, epochs: int, epoch_s: float, work: Path, storage: str | None = None) -> Run:
    out, probe = work / "outputs", work / "probe"
    probe.mkdir(parents=True, exist_ok=True)
    overrides = [
        "name=scale",
        f"n_trials={n}",
        f"max_epochs={epochs}",
        f"resources.num_cpus={k}",
        "resources.cpus_per_trial=1",
        "resources.max_retries=0",
        "dataset.limit=300",
        "space=small",
        # Every proposal feasible, so the driver's cost per trained trial is what is measured: on the 8x8
        # digits, padding=valid with a dilation leaves the second block nothing to pool, and TPE can
        # then propose such nets 100 times in a row (max_infeasible_in_a_row), which ends the sweep.
        "space.padding=same",
        "scheduler=asha",
        "scheduler.grace_period=1",
        "tracking.log_best_model=false",
        "time_budget_s=null",
        f"output_dir={out}",
        *([f"tracking.study_storage={storage}"] if storage else []),
    ]
    env = child_env(
        {
            "PYTHONPATH": str(PROBE_DIR),
            "BENCH_PROBE_DIR": str(probe),
            "BENCH_SIMULATE_EPOCH_S": str(epoch_s),
            **RAY_EQUAL_PRIORITY,
        }
    )
    started = time.monotonic()
    log = work / "log.txt"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeps", "run", *overrides], cwd=work, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
        peak = PeakRss(proc.pid)
        code = proc.wait()
        peak.stop()
    wall = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"the product failed (exit {code}):\n{log.read_text()[-3000:]}")
    memory = probe / "memory.jsonl"  # the probe's memory points (BENCH_MEMORY_EVERY), kept beside the figures
    if memory.is_file():
        memory.rename(work.parent / f"memory-{k}-{n}.jsonl")
    events = [json.loads(line) for path in probe.glob("*.jsonl") for line in path.read_text().splitlines() if line.strip()]
    driver = _driver_pid(events)
    results = [e for e in events if e["kind"] == "callback.TrackingCallback.on_trial_result" and e["pid"] == driver]
    parts: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    for e, own_s, own_cpu in _own_times([e for e in events if e["pid"] == driver and _part(e["kind"])]):
        parts[_part(e["kind"]) or ""] += own_s * 1000.0
        cpu[_part(e["kind"]) or ""] += own_cpu * 1000.0
    per_result = {p: v / max(1, len(results)) for p, v in parts.items()}
    cpu_per_result = {p: v / max(1, len(results)) for p, v in cpu.items()}
    asks = sorted((e for e in events if e["kind"] == "searcher.suggest" and e["pid"] == driver), key=lambda e: e["t0"])
    ask_ms = {i: (asks[i - 1]["t1"] - asks[i - 1]["t0"]) * 1000.0 for i in (10, 100, 1000) if len(asks) >= i}
    queue = max((int(e.get("queue", 0)) for e in events if e["kind"] == "mlflow.log_metrics"), default=0)
    recorded, epochs_run = _recorded(out, storage, n)
    return Run(
        "sweeps (this product)",
        k,
        n,
        epochs_run,
        wall,
        epochs_run * epoch_s / k,
        recorded,
        per_result,
        cpu_per_result,
        ask_ms,
        queue,
        _du_mb(out),
        peak.mb,
    )


class PeakRss:
    """A process's peak resident set (VmHWM: the kernel's own high-water mark), read until it exits.

    VmHWM only grows, so the last read before the exit is the peak; reads stop when /proc has no
    such process. NaN where /proc is missing (not Linux)."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid, self.every_s, self.kib = pid, every_s, -1
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._done.is_set() and self._read():
            self._done.wait(self.every_s)

    def _read(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        self.kib = max(self.kib, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            return False
        return True

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return self.kib * 1024 / 1e6 if self.kib >= 0 else float("nan")


# The driver's work per result, by part. MLflow: values queued for the writer thread (per epoch)
# apart from a trial's run being created and closed (synchronous, once per trial).
_MLFLOW_QUEUED = ("mlflow.log_metrics", "mlflow.set_tags", "mlflow.log_params")
_MLFLOW_RUN = ("mlflow.start_trial", "mlflow.end_trial")


def _own_times(spans: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float, float]]:
    """Each span's own wall and CPU seconds: its own less the spans nested in it on the same thread
    (a tracking callback's MLflow calls are counted once, as MLflow's)."""
    out: list[tuple[dict[str, Any], float, float]] = []
    by_thread: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in spans:
        by_thread[e.get("tid")].append(e)

    def own(done: dict[str, Any], nested: float, nested_cpu: float) -> tuple[dict[str, Any], float, float]:
        return done, done["t1"] - done["t0"] - nested, done.get("cpu", 0.0) - nested_cpu

    for thread in by_thread.values():
        thread.sort(key=lambda e: (e["t0"], -e["t1"]))
        stack: list[list[Any]] = []  # [span, nested wall seconds, nested CPU seconds]
        for e in thread:
            while stack and stack[-1][0]["t1"] <= e["t0"]:
                out.append(own(*stack.pop()))
            if stack:
                stack[-1][1] += e["t1"] - e["t0"]
                stack[-1][2] += e.get("cpu", 0.0)
            stack.append([e, 0.0, 0.0])
        out.extend(own(*entry) for entry in reversed(stack))
    return out


def _part(kind: str) -> str | None:
    if kind.startswith("callback."):
        return "Optuna trial records"
    if kind in ("searcher.suggest",):
        return "searcher ask"
    if kind.startswith("searcher."):
        return "searcher tell/results"
    if kind in _MLFLOW_QUEUED:
        return "mlflow queueing"
    if kind in _MLFLOW_RUN:
        return "mlflow run start/end"
    if kind.startswith("scheduler."):
        return "scheduler"
    if kind.startswith("progress."):
        return "progress"
    return None


def _driver_pid(events: list[dict[str, Any]]) -> int:
    return next(e["pid"] for e in events if e["kind"] == "runner.run_sweep")


def _recorded(out: Path, storage: str | None, n: int) -> tuple[str, int]:
    import optuna
    from mlflow import MlflowClient

    from sweeps.storage.storages import open_storage

    study = optuna.load_study(study_name="scale", storage=open_storage(out, storage))
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sweeps").experiment_id
    runs = client.search_runs([experiment], "tags.`sweeps.kind` = 'trial'", max_results=50000)
    finished = sum(r.info.status != "RUNNING" for r in runs)
    epochs = sum(int(r.data.tags.get("sweeps.epochs", 0)) for r in runs)
    return f"MLflow {finished}/{n}, Optuna {sum(t.state.is_finished() for t in study.trials)}/{n}", epochs


def _du_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def run_plain(k: int, n: int, epochs: int, epoch_s: float, work: Path) -> Run:
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "spec.json"
    spec.write_text(json.dumps({"k": k, "n": n, "epochs": epochs, "storage": str(work / "ray")}))
    env = child_env(
        {
            "BENCH_SIMULATE_EPOCH_S": str(epoch_s),
            "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
            "RAY_AIR_NEW_OUTPUT": "0",
            **RAY_EQUAL_PRIORITY,
        }
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "scale-plain", str(spec)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = PeakRss(proc.pid)
    stdout, stderr = proc.communicate()
    peak.stop()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"plain Ray Tune failed:\n{stdout[-2000:]}{stderr[-2000:]}")
    epochs_run = int(stdout.strip().splitlines()[-1])
    run = Run("plain Ray Tune (random, FIFO, no tracking)", k, n, epochs_run, wall, epochs_run * epoch_s / k, f"{n} results")
    run.peak_rss_mb = peak.mb
    return run


def plain_main(spec_path: Path) -> None:
    """Inside its own process: plain Ray Tune on the same simulated trial. Prints the epochs run."""
    from types import SimpleNamespace

    import ray
    from ray import tune

    from benchmarks.peers import ray_space
    from benchmarks.simulated import simulated_trial

    spec = json.loads(spec_path.read_text())
    ray.init(num_cpus=spec["k"], include_dashboard=False, log_to_driver=False)
    settings = SimpleNamespace(
        model={}, max_epochs=spec["epochs"], objectives=(("val_accuracy", "max"),), stop_epochs=frozenset({spec["epochs"]})
    )
    space = ray_space()  # the product's small space, as Ray Tune's own distributions
    tuner = tune.Tuner(
        tune.with_parameters(simulated_trial, data={}, settings=settings),
        param_space=space,
        tune_config=tune.TuneConfig(num_samples=spec["n"], metric="val_accuracy", mode="max", reuse_actors=True),
        # Tune's defaults: CheckpointConfig(num_to_keep=...) would force a snapshot of the whole
        # experiment at each checkpoint, a cost the product does not pay either (runner.KeepBestCheckpoints).
        run_config=tune.RunConfig(storage_path=spec["storage"], name="plain", verbose=0),
    )
    grid = tuner.fit()
    print(sum(int(r.metrics.get("training_iteration", 0)) for r in grid))
    ray.shutdown()


def scale(
    slots: list[int],
    counts: list[int],
    epochs: int,
    epoch_s: float,
    out: Path,
    storages: list[str | None],
    plain: bool = True,
) -> list[Run]:
    runs: list[Run] = []
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-scale-{os.getpid()}"
    try:
        for k in slots:
            for n in counts:
                for i, storage in enumerate(storages):
                    run = run_product(k, n, epochs, epoch_s, base / f"product-{k}-{n}-{i}", storage)
                    run.tool += f" [{'sqlite' if storage is None else storage.split(':', 1)[0]}]"
                    runs.append(run)
                    print(_line(run), flush=True)
                    _write(runs, out, counts, epochs, epoch_s)  # an interrupted measurement keeps what it measured
                    _keep_memory(base / f"memory-{k}-{n}.jsonl", out)
                if plain:
                    run = run_plain(k, n, epochs, epoch_s, base / f"plain-{k}-{n}")
                    runs.append(run)
                    print(_line(run), flush=True)
                    _write(runs, out, counts, epochs, epoch_s)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for line in rss_growth(runs):
        print(line, flush=True)
    return runs


def _keep_memory(points: Path, out: Path) -> None:
    """The driver's RSS by trials finished (the probe's BENCH_MEMORY_EVERY), as trials,VmRSS,VmHWM
    (MiB) in out/, where the run set it."""
    if not points.is_file():
        return
    rows = [json.loads(line) for line in points.read_text().splitlines() if line.strip()]
    with (out / points.with_suffix(".csv").name).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["label", "trials_finished", "vm_rss_mib", "vm_hwm_mib"])
        for r in rows:
            writer.writerow([r["label"], r["finished"], f"{r.get('VmRSS', 0):.1f}", f"{r.get('VmHWM', 0):.1f}"])


GROWTH_TARGET_MB = 50.0  # issue 22: the driver's peak RSS grows by less than this per 1,000 trials


def rss_growth(runs: list[Run]) -> list[str]:
    """Per tool and K: the driver's peak RSS growth per 1,000 trials between consecutive trial counts."""
    lines = []
    groups: dict[tuple[str, int], list[Run]] = defaultdict(list)
    for r in runs:
        groups[(r.tool, r.slots)].append(r)
    for (tool, k), group in groups.items():
        group.sort(key=lambda r: r.trials)
        for a, b in zip(group, group[1:]):
            per_1000 = (b.peak_rss_mb - a.peak_rss_mb) / (b.trials - a.trials) * 1000.0
            verdict = (
                f"target < {GROWTH_TARGET_MB:.0f} MB: {'met' if per_1000 < GROWTH_TARGET_MB else 'MISSED'}"
                if tool.startswith("sweeps")
                else "peer"
            )
            lines.append(
                f"K={k:>3} {tool:<48} driver peak RSS {a.peak_rss_mb:.0f} MB at {a.trials} trials -> "
                f"{b.peak_rss_mb:.0f} MB at {b.trials}: {per_1000:+.1f} MB per 1,000 trials ({verdict})"
            )
    return lines


def _line(r: Run) -> str:
    parts = ", ".join(f"{p} {v:.2f}" for p, v in sorted(r.driver_ms.items()))
    cpu = ", ".join(f"{p} {v:.2f}" for p, v in sorted(r.driver_cpu_ms.items()))
    asks = ", ".join(f"#{i} {v:.1f} ms" for i, v in r.ask_ms.items())
    return (
        f"K={r.slots:>3} {r.tool:<48} wall {r.wall_s:7.1f} s  ideal {r.ideal_s:6.1f} s  overhead {r.overhead_pct:6.0f}%  "
        f"{r.trials_per_hour:8.0f} trials/h  epochs {r.epochs_run}  driver peak RSS {r.peak_rss_mb:.0f} MB"
        + (
            f"\n      driver ms/result (wall): {parts} (total {sum(r.driver_ms.values()):.2f})"
            f"\n      driver ms/result (CPU): {cpu} (total {sum(r.driver_cpu_ms.values()):.2f})"
            f"\n      Optuna ask {asks}; "
            f"MLflow queue max {r.queue_max}; outputs {r.disk_mb:.1f} MB; recorded {r.recorded}"
            if r.driver_ms
            else ""
        )
    )


def _write(runs: list[Run], out: Path, counts: list[int], epochs: int, epoch_s: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    header = (
        f"python -m benchmarks scale --slots {','.join(str(k) for k in dict.fromkeys(r.slots for r in runs))} --trials {','.join(str(n) for n in counts)} "
        f"--epochs {epochs} --epoch-s {epoch_s}: commit {commit}, {platform.node()} ({os.cpu_count()} cores, "
        f"load average {load} at the end), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    (out / "scale.txt").write_text(header + "\n" + "\n".join([*map(_line, runs), *rss_growth(runs)]) + "\n")
    with (out / "scale.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "tool",
                "slots",
                "trials",
                "epochs_run",
                "wall_s",
                "ideal_s",
                "overhead_pct",
                "trials_per_hour",
                "driver_ms_per_result",
                "driver_ms_parts",
                "driver_cpu_ms_per_result",
                "driver_cpu_ms_parts",
                "ask_ms",
                "mlflow_queue_max",
                "outputs_mb",
                "driver_peak_rss_mb",
                "recorded",
                "commit",
            ]
        )
        for r in runs:
            writer.writerow(
                [
                    r.tool,
                    r.slots,
                    r.trials,
                    r.epochs_run,
                    f"{r.wall_s:.1f}",
                    f"{r.ideal_s:.1f}",
                    f"{r.overhead_pct:.1f}",
                    f"{r.trials_per_hour:.0f}",
                    f"{sum(r.driver_ms.values()):.2f}",
                    json.dumps(r.driver_ms),
                    f"{sum(r.driver_cpu_ms.values()):.2f}",
                    json.dumps(r.driver_cpu_ms),
                    json.dumps(r.ask_ms),
                    r.queue_max,
                    f"{r.disk_mb:.1f}",
                    f"{r.peak_rss_mb:.1f}",
                    r.recorded,
                    commit,
                ]
            )


def small_space() -> dict[str, Any]:
    """conf/space/small.yaml's searched params as Optuna distributions."""
    import optuna
    import yaml

    from sweeps.space import parse_value

    spec = yaml.safe_load((ROOT / "conf" / "space" / "small.yaml").read_text())
    parsed = ((k, parse_value(k, v)) for k, v in spec.items())
    return {k: d for k, d in parsed if isinstance(d, optuna.distributions.BaseDistribution)}


def timed_asks(study: Any, space: dict[str, Any], n: int, marks: tuple[int, ...]) -> dict[int, list[tuple[float, float]]]:
    """Asks `n` trials as the product's driver does (three intermediate values and a value each, a
    synthetic objective with signal in the learning rate); for each mark, the (wall, CPU) ms of
    the 5 asks up to it."""
    import random

    rng, seen = random.Random(0), defaultdict(list)
    for i in range(1, n + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        trial = study.ask(space)
        took = ((time.perf_counter() - t0) * 1000.0, (time.process_time() - c0) * 1000.0)
        for mark in marks:
            if mark - 4 <= i <= mark:
                seen[mark].append(took)
        lr = trial.params["learning_rate"]
        for step in (1, 2, 3):
            trial.report(0.5 + 0.1 * step - abs(lr - 3e-3), step)
        study.tell(trial, 0.8 - abs(lr - 3e-3) * 10 + rng.random() * 0.01)
    return seen


def ask_latency(
    n: int, out: Path, marks: tuple[int, ...] = (10, 30, 100, 300, 1000)
) -> dict[str, dict[int, tuple[float, float]]]:
    """Optuna's ask alone (no Ray), as the product asks it (its TPE settings, the small space, three
    intermediate values and a value per trial), on the product's sqlite storage and in memory (TPE's
    own cost). At each trial in `marks`: the median of the 5 asks up to it, wall and CPU ms. Also
    one sqlite commit in sqlite's default mode and in the mode the product sets (sweeps/core/sqlite.py)."""
    import statistics
    import tempfile
    import warnings

    import optuna

    from sweeps.config.validation import load_config
    from sweeps.samplers.factories import make_sampler
    from sweeps.storage.storages import open_storage

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = small_space()
    found: dict[str, dict[int, tuple[float, float]]] = {}
    for label in ("sqlite", "in memory"):
        with tempfile.TemporaryDirectory() as folder:
            study = optuna.create_study(
                study_name="ask",
                storage=open_storage(Path(folder)) if label == "sqlite" else None,
                sampler=make_sampler(load_config(["sampler=tpe"]).sampler, 0),  # the product's TPE, as conf/ sets it
                direction="maximize",
            )
            seen = timed_asks(study, space, n, marks)
            found[label] = {
                m: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for m, v in seen.items() if m <= n
            }
    commits = _commit_ms()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        f"python -m benchmarks scale-ask --trials {n}: commit {commit}, {platform.node()}, {os.cpu_count()} cores, "
        f"load average {load}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        *(
            f"  Optuna ask, {label}: ms at trial (wall/CPU, median of 5) "
            + ", ".join(f"#{k} {w:.1f}/{c:.1f}" for k, (w, c) in v.items())
            for label, v in found.items()
        ),
        "  one sqlite commit: " + ", ".join(f"{mode} {ms:.2f} ms" for mode, ms in commits.items()),
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale_ask.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return found


def _commit_ms(rows: int = 300) -> dict[str, float]:
    """One small insert and commit, in sqlite's default mode and in the product's (sweeps/core/sqlite.py)."""
    import sqlite3
    import tempfile

    found = {}
    for mode, pragmas in (
        ("default (rollback journal, synchronous=FULL)", ()),
        ("WAL, synchronous=NORMAL", ("journal_mode=WAL", "synchronous=NORMAL")),
    ):
        with tempfile.TemporaryDirectory() as folder:
            db = sqlite3.connect(Path(folder) / "x.db")
            for pragma in pragmas:
                db.execute(f"PRAGMA {pragma}")
            db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
            db.commit()
            t0 = time.perf_counter()
            for i in range(rows):
                db.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 50))
                db.commit()
            found[mode] = (time.perf_counter() - t0) * 1000.0 / rows
            db.close()
    return found
