"""The trainable: sampled params -> Keras model -> fit epoch by epoch -> one report per epoch.

Runs inside a (reused) Ray actor: TensorFlow is imported once per actor, the data arrives from the
object store, and the Keras session is cleared at the start of every trial.
"""

from __future__ import annotations

import gc
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Keep TensorFlow's C++ start-up chatter out of trial logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODEL_FILE = "model.keras"
STATE_FILE = "state.json"  # epoch and best values of a checkpoint, to resume a retried trial
# Keys every report carries besides the per-epoch metrics.
FINISHED = "trial_finished"  # True only on the report after the last epoch the trial meant to train
INFEASIBLE = "infeasible_reason"


@dataclass(frozen=True)
class TrialSettings:
    """Everything a trial needs besides its sampled params; picklable, sent once per sweep."""

    model: dict[str, Any]  # model defaults merged with the space's constants
    input_shape: tuple[int, int, int]
    num_classes: int
    objectives: tuple[tuple[str, str], ...]  # (metric, mode); the first picks the kept checkpoint
    max_epochs: int
    seed: int
    cpus: int
    gpu_fraction: float = 0.0  # the GPU share Ray gave each trial (0: CPU only)
    max_params: int | None = None
    max_flops: int | None = None
    # Epochs after which the scheduler may stop a trial (its rungs and the last epoch): the best
    # epoch's weights are written there. Empty: after every improving epoch.
    stop_epochs: frozenset[int] = frozenset()
    checkpoint_every_s: float = 60.0  # and at most this long after an unsaved improvement, for retries


EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def best_key(metric: str) -> str:
    return f"best_{metric}"


def objective_key(metric: str) -> str:
    """The report key whose final value a trial's objective takes: the best epoch for epoch
    metrics (the checkpoint that is kept), the value itself for params and flops."""
    return best_key(metric) if metric in EPOCH_METRICS else metric


def _worst(mode: str) -> float:
    return -math.inf if mode == "max" else math.inf


def _configure_runtime(cpus: int, gpu_fraction: float) -> str:
    """Threads matched to the trial's CPUs; GPU memory grown on demand, or capped at the trial's
    share of the card when it shares one. Returns the device the trial trains on."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, cpus))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, cpus)))
        for gpu in gpus:
            total = _gpu_memory_mb() if 0 < gpu_fraction < 1 else None
            if total:
                limit = tf.config.LogicalDeviceConfiguration(memory_limit=int(total * gpu_fraction))
                tf.config.set_logical_device_configuration(gpu, [limit])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        pass  # a reused worker already initialised TensorFlow with these settings
    if not gpus:
        return "CPU"
    return str(tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name))


def _gpu_memory_mb() -> int | None:
    """Memory of the first GPU Ray gave this worker, from nvidia-smi (None if it cannot say)."""
    import subprocess

    index = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", index],
                             capture_output=True, text=True, timeout=10)
        return int(out.stdout.strip().splitlines()[0]) if out.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def _placement(device: str) -> dict[str, str]:
    """Where the trial ran, for its MLflow run: host, Ray node, device."""
    import socket

    import ray

    return {"node": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id(), "device": device}


def _better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def _rss_mb() -> float:
    """Resident memory of this worker process (Linux /proc; 0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


_settled = False


def _settle_worker() -> None:
    """Freeze what the worker holds before its first trial, once per process.

    TensorFlow's import leaves ~400,000 objects that live as long as the worker; every full
    collection walks them all (0.2-0.4 s here, several per trial). Frozen, they are skipped, and a
    collection sees only the trial's own objects.
    """
    global _settled
    if not _settled:
        gc.collect()
        gc.freeze()
        _settled = True


@contextmanager
def _forget_custom_gradients() -> Iterator[None]:
    """Drop the gradient functions TensorFlow registered while this trial traced its model.

    Each graph-mode `tf.custom_gradient` (Keras uses some in every train step) registers a
    "CustomGradient-<n>" entry in a process-global registry that is never removed; its closure
    keeps the whole traced FuncGraph alive, about 8 MB per trial here. A reused worker would grow
    without bound; the trial's graphs are dead once it ends, so their entries can go.
    """
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    before = set(registry)
    try:
        yield
    finally:
        for name in set(registry) - before:
            if name.startswith("CustomGradient-"):
                registry.pop(name, None)
        gc.collect()


def _resume_state(tune: Any, keras: Any) -> tuple[Any, int, dict[str, float]]:
    """After a retry: the model, epochs done and best values of the last checkpoint, if any."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, 0, {}
    with checkpoint.as_directory() as folder:
        state = json.loads((Path(folder) / STATE_FILE).read_text())
        model = keras.saving.load_model(Path(folder) / MODEL_FILE)
    return model, int(state["epoch"]), dict(state["best"])


def train_trial(config: dict[str, Any], data: dict[str, Any], settings: TrialSettings) -> None:
    from ray import tune

    from models.plan import InfeasibleModel, plan_conv2d

    params = {**settings.model, **config}
    try:
        plan = plan_conv2d(params, settings.input_shape, settings.num_classes, settings.max_params, settings.max_flops)
    except InfeasibleModel as exc:
        # Tune insists on the objectives in every report: give them the worst values, flagged infeasible.
        report: dict[str, Any] = {INFEASIBLE: str(exc), FINISHED: True}
        for metric, mode in settings.objectives:
            report[metric] = report[objective_key(metric)] = _worst(mode)
        tune.report(report)
        return

    device = _configure_runtime(settings.cpus, settings.gpu_fraction)
    import keras  # noqa: F401  (imported before the freeze, with TensorFlow)

    from sweeps.sysmetrics import sampling

    _settle_worker()
    # Each report carries the epoch's CPU, memory and GPU use; the driver logs them as system metrics.
    with _forget_custom_gradients(), sampling(tune, settings.cpus) as reporting:
        _train(params, plan, data, settings, reporting, _placement(device))


def _train(params: dict[str, Any], plan: Any, data: dict[str, Any], settings: TrialSettings, tune: Any, placement: dict[str, str]) -> None:
    import keras

    from models.conv2d import build_conv2d
    from sweeps import faults

    keras.backend.clear_session(free_memory=False)  # one collection per trial, at its end
    keras.utils.set_random_seed(settings.seed)
    model, done, best = _resume_state(tune, keras)
    if model is None:
        faults.at_build(params)
        model = build_conv2d(params, settings.input_shape, settings.num_classes)
    metric, mode = settings.objectives[0]
    kept = _BestWeights(settings)
    try:
        for epoch in range(done + 1, settings.max_epochs + 1):
            faults.at_epoch(params, epoch)
            metrics = _fit_one_epoch(model, data, int(params["batch_size"]), epoch)
            if _better(metrics[metric], best.get(metric), mode):
                kept.remember(model)
            for name, direction in settings.objectives:
                if name in EPOCH_METRICS and _better(metrics[name], best.get(name), direction):
                    best[name] = metrics[name]
            metrics.update({best_key(name): value for name, value in best.items()})
            metrics.update({
                "params": plan.params,
                "flops": plan.flops,
                "worker_rss_mb": _rss_mb(),
                FINISHED: epoch == settings.max_epochs,
                **placement,
            })
            if kept.due(epoch):
                with tempfile.TemporaryDirectory() as folder:
                    kept.save(model, Path(folder) / MODEL_FILE)
                    (Path(folder) / STATE_FILE).write_text(json.dumps({"epoch": epoch, "best": best}))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(metrics)
    finally:
        # Reused actors run many trials: leave nothing of this one behind.
        del model, kept
        keras.backend.clear_session(free_memory=False)


class _BestWeights:
    """The best epoch's weights, held in memory and written only where the trial may end.

    Writing a checkpoint after every improving epoch cost ~0.15 s each (save + Tune's copy); the
    scheduler can stop a trial only at its rungs and the last epoch, so the kept model is the
    same. An unsaved improvement older than `checkpoint_every_s` is written too, so a retried
    trial redoes little.
    """

    def __init__(self, settings: TrialSettings) -> None:
        self.stop_epochs, self.every_s = settings.stop_epochs, settings.checkpoint_every_s
        self.weights: list[Any] | None = None
        self.since: float | None = None  # when the unsaved improvement happened

    def remember(self, model: Any) -> None:
        self.weights = model.get_weights()
        self.since = self.since if self.since is not None else time.monotonic()

    def due(self, epoch: int) -> bool:
        if self.since is None:
            return False
        if not self.stop_epochs:
            return True
        return epoch in self.stop_epochs or time.monotonic() - self.since >= self.every_s

    def save(self, model: Any, path: Path) -> None:
        current = model.get_weights()
        model.set_weights(self.weights)
        try:
            model.save(path)
        finally:
            model.set_weights(current)
        self.since = None


def _fit_one_epoch(model: Any, data: dict[str, Any], batch_size: int, epoch: int) -> dict[str, float]:
    import keras

    history = model.fit(
        data["x_train"], data["y_train"],
        batch_size=batch_size, epochs=epoch, initial_epoch=epoch - 1,
        validation_data=(data["x_val"], data["y_val"]),
        callbacks=[keras.callbacks.TerminateOnNaN()],  # stops within the epoch, at the first bad batch
        verbose=0,
    ).history
    loss = history["loss"][-1]
    if not math.isfinite(loss) or "val_loss" not in history:
        raise FloatingPointError(f"training loss became {loss} at epoch {epoch}; the trial was stopped at once")
    return {
        "train_loss": float(loss),
        "train_accuracy": float(history["accuracy"][-1]),
        "val_loss": float(history["val_loss"][-1]),
        "val_accuracy": float(history["val_accuracy"][-1]),
    }
