"""This product, run as a user runs it (`python -m sweeps run ...` in its own process), read back
from what it records: MLflow (trial runs, per-epoch `val_accuracy` and `epoch_time_s` with their
timestamps) and the Optuna study (each trial's completion time).

What `epoch_time_s` measures: Ray Tune's `time_this_iter_s`, the time between two `tune.report`
calls of a trial inside its worker. Epoch 1's includes everything before the first report (the
TensorFlow import of a fresh worker, clearing the session, building and compiling the model, the
first epoch's graph tracing); every epoch's includes saving the checkpoint when it improved. So
sum(epoch_time_s) overstates time inside fit. By default the harness therefore also runs the
product under a timing probe (benchmarks/probe/sitecustomize.py: wraps Model.fit, Model.save,
build_conv2d, tune.report, the MLflow writes and the searcher, without touching the product's
source) and takes fit time from it; with probe=False it falls back to sum(epoch_time_s).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import COMPLETE, FAILED, INFEASIBLE, PRUNED, Budget, ToolRun, Trial
from benchmarks.peers import RAY_EQUAL_PRIORITY, child_env

LABEL = "sweeps (this product)"
PROBE_DIR = Path(__file__).resolve().parent / "probe"
STATES = {"COMPLETE": COMPLETE, "PRUNED": PRUNED, "INFEASIBLE": INFEASIBLE}


def command(budget: Budget, out: Path, name: str) -> list[str]:
    overrides = [
        f"name={name}",
        f"n_trials={budget.n_trials}",
        f"max_epochs={budget.max_epochs}",
        f"resources.num_cpus={budget.slots}",
        f"output_dir={out}",
        f"seed={budget.seed}",
        f"dataset.val_fraction={budget.val_fraction}",
        f"scheduler.grace_period={budget.grace_period}",
        f"scheduler.reduction_factor={budget.reduction_factor}",
        "time_budget_s=null",  # the budget is the trial count, as for the peers
    ]
    if budget.space is not None:
        overrides.insert(0, f"space={budget.space}")
    if budget.dataset != "digits":
        overrides.insert(0, f"dataset={budget.dataset}")  # a group choice: before the group's keys
    if budget.dataset_path is not None:
        overrides.append(f"dataset.path={budget.dataset_path}")
    for key, value in (budget.dataset_options or {}).items():
        shown = "[" + ",".join(str(v) for v in value) + "]" if isinstance(value, (list, tuple)) else value
        overrides.append(f"dataset.{key}={shown}")
    if budget.limit is not None:
        overrides.append(f"dataset.limit={budget.limit}")
    return [sys.executable, "-m", "sweeps", "run", *overrides]


def run(
    budget: Budget, workdir: Path, probe: bool = True, name: str = "bench", timeout_s: float | None = None, ray_nice: bool = False
) -> ToolRun:
    workdir.mkdir(parents=True, exist_ok=True)
    out, probe_dir, log = workdir / "outputs", workdir / "probe", workdir / "log.txt"
    extra_env = {"PYTHONPATH": str(PROBE_DIR), "BENCH_PROBE_DIR": str(probe_dir)} if probe else {}
    if not ray_nice:
        extra_env.update(RAY_EQUAL_PRIORITY)
    if probe:
        probe_dir.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        launched = time.time()
        proc = subprocess.Popen(
            command(budget, out, name), cwd=workdir, env=child_env(extra_env), stdout=fh, stderr=subprocess.STDOUT
        )
        returncode = proc.wait(timeout=timeout_s)
        ended = time.time()
    if returncode != 0:
        raise RuntimeError(f"{LABEL} failed (exit {returncode}); log {log}:\n{log.read_text(errors='replace')[-3000:]}")
    events = read_probe(probe_dir) if probe else []
    trials = read_trials(out, name, events)
    result = ToolRun(
        tool=LABEL,
        slots=budget.slots,
        launched=launched,
        ended=ended,
        trials=trials,
        returncode=returncode,
        early_stopping="ASHA",
        log=str(log),
        fit_source="probe around Model.fit" if probe else "MLflow sum(epoch_time_s): includes build, checkpoint saves, reports",
        notes="reuse_actors, TF threads = CPUs per trial, MLflow per epoch (queued), best epoch checkpointed at ASHA rungs, best model logged",
    )
    if probe:
        result.extra["breakdown"] = breakdown(result, events, driver_pid=proc.pid)
    result.extra["test_accuracy"] = held_out_accuracy(out, name)
    return result


def held_out_accuracy(out: Path, name: str) -> float | None:
    """The sweep's `test_accuracy` (its best model scored once on the held-out test split, recorded
    on the parent run); None when the data has no test split."""
    from mlflow import MlflowClient

    from tracking import find_sweep_run

    uri = f"sqlite:///{out / 'mlflow.db'}"
    parent = find_sweep_run(uri, "sweeps", name)
    if parent is None:
        raise RuntimeError(f"no sweep {name!r} in {uri}")
    return MlflowClient(uri).get_run(parent.run_id).data.metrics.get("test_accuracy")


def read_probe(folder: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                events.append(json.loads(line))
    return sorted(events, key=lambda e: e["t0"])


def read_trials(out: Path, name: str, events: list[dict[str, Any]]) -> list[Trial]:
    """One Trial per nested MLflow run. Start: the run's start (Tune started the trial; logged by
    the driver). End: Optuna's completion time of the trial (told by the searcher), not the run's
    end_time, which the best trial's run gets again when its model is logged after the sweep."""
    import optuna
    from mlflow import MlflowClient  # only the metric timestamps: tracking.query returns values by step

    from tracking import find_sweep_run, list_trial_runs

    uri = f"sqlite:///{out / 'mlflow.db'}"
    parent = find_sweep_run(uri, "sweeps", name)
    if parent is None:
        raise RuntimeError(f"no sweep {name!r} in {uri}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}")
    completed = {t.user_attrs.get("tune_trial_id"): t.datetime_complete for t in study.trials if t.datetime_complete}
    fits: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["kind"] == "fit" and e.get("trial"):
            fits[e["trial"]].append(e)
    client = MlflowClient(uri)
    trials = []
    for record in list_trial_runs(uri, parent):
        tune_id = record.tags.get("tune.trial_id", record.run_id)
        val = sorted(client.get_metric_history(record.run_id, "val_accuracy"), key=lambda m: m.step)
        iters = sorted(client.get_metric_history(record.run_id, "epoch_time_s"), key=lambda m: m.step)
        start = (record.start_time_ms or 0) / 1000
        done = completed.get(tune_id)
        end = done.timestamp() if done else (record.end_time_ms or record.start_time_ms or 0) / 1000
        if tune_id in fits:
            epoch_fit = [e["t1"] - e["t0"] for e in fits[tune_id]]
        else:
            epoch_fit = [m.value for m in iters] if not events else []
        trials.append(
            Trial(
                id=tune_id,
                start=start,
                end=end,
                fit_s=sum(epoch_fit),
                epochs=len(val),
                state=STATES.get(record.tags.get("sweeps.state", ""), FAILED),
                curve=[(m.timestamp / 1000, m.value) for m in val],
                epoch_fit_s=epoch_fit,
            )
        )
    return trials


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "total_s": 0.0, "median_s": 0.0}
    return {"n": len(values), "total_s": round(sum(values), 3), "median_s": round(statistics.median(values), 3)}


def _span(events: list[dict[str, Any]], kind: str) -> float:
    return sum(e["t1"] - e["t0"] for e in events if e["kind"] == kind)


def _union(spans: list[tuple[float, float]]) -> float:
    """Total length of possibly nested or overlapping intervals (imports nest: keras imports TF)."""
    total, end = 0.0, -math.inf
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def breakdown(run: ToolRun, events: list[dict[str, Any]], driver_pid: int) -> dict[str, Any]:
    """Where the product's time goes, from the probe's events and the trials' brackets.

    Per trial (medians over the trials that trained): wall = to_first_fit + fits + between_fits
    + after_last_fit. to_first_fit = dispatch (Tune starting the trial -> the trainable running in
    its worker) + imports (TensorFlow/Keras, in a fresh worker only) + build_compile + the rest
    (clear_session and gc.collect, thread settings, seeding); between_fits = checkpoint saves + reports + the rest;
    after_last_fit = the last report, Tune's completion, the driver's MLflow end and Optuna's tell.
    Outside the trial's wall but holding its slot: worker_cleanup_after_trial_end (the trainable's
    `finally`: clear_session, gc) and reused_worker_idle_before_next (Tune handing the actor on).
    first_epoch_extra (inside fit) = first epoch's fit - the median of its later epochs: graph tracing.
    """
    driver: dict[str, list[float]] = defaultdict(list)
    worker: dict[str, list[float]] = defaultdict(list)
    by_trial: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        (driver if e["pid"] == driver_pid else worker)[e["kind"]].append(e["t1"] - e["t0"])
        if e.get("trial") and e["pid"] != driver_pid:
            by_trial[e["trial"]].append(e)
    per_trial: dict[str, list[float]] = defaultdict(list)
    for t in run.trials:
        mine = by_trial.get(t.id, [])
        fits = [e for e in mine if e["kind"] == "fit"]
        if not fits:
            continue
        first, last = fits[0], fits[-1]
        begin = min((e["t0"] for e in mine if e["kind"] == "trial_begin"), default=first["t0"])
        imports = _union([(e["t0"], e["t1"]) for e in mine if e["kind"].startswith("import_")])
        to_first_fit = first["t0"] - t.start
        between = (last["t1"] - first["t0"]) - t.fit_s
        per_trial["wall"].append(t.end - t.start)
        per_trial["fit"].append(t.fit_s)
        per_trial["overhead"].append((t.end - t.start) - t.fit_s)
        per_trial["to_first_fit"].append(to_first_fit)
        per_trial["  dispatch"].append(begin - t.start)
        per_trial["  imports"].append(imports)
        per_trial["  build_compile"].append(_span(mine, "build"))
        before = [e for e in mine if e["t1"] <= first["t0"]]
        cleanup_before = _union([(e["t0"], e["t1"]) for e in before if e["kind"] in ("gc_collect", "clear_session")])
        per_trial["  clear_session_gc"].append(cleanup_before)
        per_trial["  other_before_fit"].append(to_first_fit - (begin - t.start) - imports - _span(mine, "build") - cleanup_before)
        per_trial["between_fits"].append(between)
        per_trial["  checkpoint_save"].append(
            sum(e["t1"] - e["t0"] for e in mine if e["kind"] == "save" and e["t0"] < last["t0"])
        )
        per_trial["  report"].append(sum(e["t1"] - e["t0"] for e in mine if e["kind"] == "report" and e["t0"] < last["t0"]))
        per_trial["after_last_fit"].append(t.end - last["t1"])
        ended = [e for e in mine if e["kind"] == "trial"]
        if ended:  # the worker still runs after the driver saw the trial end: the slot is not free yet
            per_trial["worker_cleanup_after_trial_end"].append(ended[0]["t1"] - t.end)
            per_trial["  clear_session_gc_after_fits"].append(
                _union(
                    [(e["t0"], e["t1"]) for e in mine if e["kind"] in ("gc_collect", "clear_session") and e["t0"] >= last["t1"]]
                )
            )
        later = [e["t1"] - e["t0"] for e in fits[1:]]
        if later:
            per_trial["first_epoch_extra (in fit)"].append((first["t1"] - first["t0"]) - statistics.median(later))
    # A reused worker between trials: from the end of one trial's function to the next one's start.
    idle_between: list[float] = []
    by_pid: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["kind"] in ("trial_begin", "trial") and e["pid"] != driver_pid:
            by_pid[e["pid"]].append(e)
    for seq in by_pid.values():
        seq.sort(key=lambda e: e["t0"])
        for a, b in itertools.pairwise(seq):
            if a["kind"] == "trial" and b["kind"] == "trial_begin":
                idle_between.append(b["t0"] - a["t1"])
    if idle_between:
        per_trial["reused_worker_idle_before_next"] = idle_between
    starts, ends = [t.start for t in run.trials], [t.end for t in run.trials]
    wall = run.ended - run.launched
    slot_s = wall * run.slots
    in_trials = sum(t.end - t.start for t in run.trials)
    fit = sum(t.fit_s for t in run.trials)
    workers = {e["pid"] for e in events if e["kind"] == "trial_begin"}
    # MLflow writes the driver made while trials ran: each holds up Tune's loop, and with it the
    # trial waiting for its next epoch (writes are queued; this is the time until each call returns).
    first, last = (min(starts), max(ends)) if starts else (math.inf, -math.inf)
    tracking = sum(
        e["t1"] - e["t0"]
        for e in events
        if e["pid"] == driver_pid and e["kind"].startswith("mlflow.") and first <= e["t0"] <= last
    )
    return {
        "per_trial_median_s": {k: round(statistics.median(v), 3) for k, v in per_trial.items()},
        "per_trial_total_s": {k: round(sum(v), 1) for k, v in per_trial.items()},
        "worker_calls": {k: _stats(v) for k, v in sorted(worker.items())},
        "driver_calls": {k: _stats(v) for k, v in sorted(driver.items())},
        "sweep": {
            "wall_s": round(wall, 1),
            "startup_s": round(min(starts) - run.launched, 1) if starts else None,
            "tail_s": round(run.ended - max(ends), 1) if ends else None,
            "slot_seconds": round(slot_s, 1),
            "fit_share": round(fit / slot_s, 3),
            "trial_overhead_share": round((in_trials - fit) / slot_s, 3),
            "outside_trials_share": round(1 - in_trials / slot_s, 3),
            "tracking_s": round(tracking, 2),
            "tracking_share_of_trial_time": round(tracking / in_trials, 4) if in_trials else None,
            "worker_processes": len(workers),
            "epochs": sum(t.epochs for t in run.trials),
        },
    }


def format_breakdown(b: dict[str, Any]) -> str:
    s = b["sweep"]
    lines = [
        "Where this product's time goes (timing probe; seconds):",
        (
            f"  sweep: wall {s['wall_s']} = start-up to the first trial {s['startup_s']} + trials + after the last trial "
            f"{s['tail_s']}; of {s['slot_seconds']} slot-seconds: inside fit {s['fit_share']:.0%}, per-trial overhead "
            f"{s['trial_overhead_share']:.0%}, outside any trial (start-up, tail, idle slots) {s['outside_trials_share']:.0%}; "
            f"{s['worker_processes']} worker processes"
        ),
        (
            f"  MLflow writes in the driver while trials ran: {s.get('tracking_s')} s = "
            f"{(s.get('tracking_share_of_trial_time') or 0):.1%} of the trials' time"
        ),
        "  per trial, median (total over trials):",
    ]
    for k, v in b["per_trial_median_s"].items():
        lines.append(f"    {k:<34} {v:8.3f}  ({b['per_trial_total_s'][k]})")
    for side in ("driver_calls", "worker_calls"):
        lines.append(f"  {side.replace('_', ' ')}: calls x median = total")
        for k, v in b[side].items():
            lines.append(f"    {k:<28} {v['n']:4d} x {v['median_s']:7.3f} = {v['total_s']:8.3f}")
    return "\n".join(lines)
