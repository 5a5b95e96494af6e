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
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sweeps.core.errors import DoNotRetry
from sweeps.core.metrics import EPOCH_METRICS
from sweeps.core.protocol import (
    CLONED_FROM,
    CONTINUES,
    EPOCH,
    EXPLORED_PREFIX,
    FAILED_ERROR,
    FINISHED,
    INFEASIBLE,
    MODEL_FILE,
    RESUME_FILE,
    STATE_FILE,
    TrialSettings,
    best_key,
    objective_key,
    reached_goal,
    trial_params,
)
from sweeps.worker.snapshots import Snapshot, load_snapshot, newest_snapshot

# Keep TensorFlow's C++ start-up chatter out of trial logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", index],
            capture_output=True,
            text=True,
            timeout=10,
        )
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


def _own_folder(tune: Any) -> Path | None:
    try:
        return Path(tune.get_context().get_storage().trial_fs_path)
    except (AttributeError, RuntimeError):
        return None  # no storage context (a trial run outside Tune)


def _resume_state(tune: Any, continue_from: str | None) -> Snapshot | None:
    """Where a trial goes on from: a checkpoint of another trial, handed over by PBT's exploit,
    exactly as given; for a retry after a dead worker or a pause, its newest whole snapshot,
    whether Tune had registered it (`get_checkpoint`) or the worker died first, having written it
    to the trial's folder; for an interrupted trial that a resumed sweep continues, the snapshot
    the sweep found for it. None: from the first epoch."""
    checkpoint = tune.get_checkpoint()
    own = _own_folder(tune)
    if checkpoint is not None and own is not None and not Path(checkpoint.path).resolve().is_relative_to(own.resolve()):
        with checkpoint.as_directory() as cloned:
            return load_snapshot(Path(cloned))  # its own newer snapshots are what PBT replaced
    with checkpoint.as_directory() if checkpoint is not None else nullcontext(None) as registered:
        folders = [Path(registered)] if registered else []
        if own is not None:
            folders += own.glob("checkpoint_*")
        if continue_from:
            folders.append(Path(continue_from))
        folder, _ = newest_snapshot(folders)
        return load_snapshot(folder) if folder is not None else None


def train_trial(config: dict[str, Any], data: dict[str, Any], settings: TrialSettings) -> None:
    from ray import tune

    from models.plan import InfeasibleModel, plan_conv2d

    continue_from = dict(settings.continue_from).get(config[CONTINUES]) if CONTINUES in config else None
    params = {**settings.model, **trial_params(config)}
    try:
        plan = plan_conv2d(params, settings.input_shape, settings.num_classes, settings.max_params, settings.max_flops)
    except InfeasibleModel as exc:
        # Tune insists on the objectives in every report: give them the worst values, flagged infeasible.
        report: dict[str, Any] = {INFEASIBLE: str(exc), FINISHED: True, EPOCH: 0}
        for metric, mode in settings.objectives:
            report[metric] = report[objective_key(metric)] = _worst(mode)
        tune.report(report)
        return

    device = _configure_runtime(settings.cpus, settings.gpu_fraction)
    import keras  # noqa: F401  (imported before the freeze, with TensorFlow)

    from sweeps.worker.sysmetrics import sampling

    _settle_worker()
    # Each report carries the epoch's CPU, memory and GPU use; the driver logs them as system metrics.
    with _forget_custom_gradients(), sampling(tune, settings.cpus) as reporting:
        try:
            _train(params, plan, data, settings, reporting, _placement(device), continue_from)
        except Exception as exc:
            if not isinstance(exc, DoNotRetry) and not deterministic(exc):
                raise  # may pass on another worker or a second try: Tune retries it (max_retries)
            failure = exc if isinstance(exc, DoNotRetry) else DoNotRetry(exc)
            report = {FAILED_ERROR: failure.text, FINISHED: True, EPOCH: failure.epochs_done}
            for metric, mode in settings.objectives:
                report[metric] = report[objective_key(metric)] = _worst(mode)
            reporting.report(report)


def deterministic(exc: BaseException) -> bool:
    """A failure a retry cannot help (as Determined's log policies separate them): building the
    model raised, memory ran out for this model's size (TensorFlow's ResourceExhaustedError), or the
    loss diverged (same seed, same data order: it diverges again). A worker that died never gets
    here (Tune sees its actor die and retries it); other errors (I/O, ...) may be transient."""
    return isinstance(exc, DoNotRetry) or isinstance(exc, FloatingPointError) or type(exc).__name__ == "ResourceExhaustedError"


def _train(
    params: dict[str, Any],
    plan: Any,
    data: dict[str, Any],
    settings: TrialSettings,
    tune: Any,
    placement: dict[str, str],
    continue_from: str | None = None,
) -> None:
    import keras

    from models.conv2d import build_conv2d
    from sweeps.testing import faults
    from sweeps.worker.feed import open_feed

    keras.backend.clear_session(free_memory=False)  # one collection per trial, at its end
    keras.utils.set_random_seed(settings.seed)
    kept = _BestWeights(settings)
    snapshot = _resume_state(tune, continue_from)
    own_id = _trial_id(tune)
    cloned_from = snapshot.trial_id if snapshot is not None and snapshot.trial_id not in (None, own_id) else None
    if snapshot is None:
        try:
            faults.at_build(params)
            model, done, best, history = build_conv2d(params, settings.input_shape, settings.num_classes), 0, {}, []
        except Exception as exc:
            raise DoNotRetry(exc) from exc  # the same params fail the same way
    else:
        model, done, best, history = snapshot.model, snapshot.epoch, snapshot.best, snapshot.history
        kept.restore(snapshot)
        if cloned_from is not None:  # PBT's exploit: its weights and optimizer state, this trial's (explored) params
            model = _with_params(model, params, settings)
    if getattr(model, "layout_note", None):  # recorded on the trial's run (tag sweeps.device)
        placement = {**placement, "device": f"{placement['device']}; {model.layout_note}"}
    metric, mode = settings.objectives[0]
    feed = open_feed(data, int(params["batch_size"]), settings.seed)  # arrays, or this node's streamed cache
    try:
        for epoch in range(done + 1, settings.max_epochs + 1):
            try:
                faults.at_epoch(params, epoch)
                metrics = _fit_one_epoch(model, feed, int(params["batch_size"]), epoch)
            except Exception as exc:
                if deterministic(exc):
                    raise DoNotRetry(exc, epochs_done=epoch - 1) from exc
                raise
            history.append({EPOCH: epoch, **metrics})
            if _better(metrics[metric], best.get(metric), mode):
                kept.remember(model, epoch)
            for name, direction in settings.objectives:
                if name in EPOCH_METRICS and _better(metrics[name], best.get(name), direction):
                    best[name] = metrics[name]
            metrics.update({best_key(name): value for name, value in best.items()})
            metrics.update(
                {
                    "params": plan.params,
                    "flops": plan.flops,
                    "worker_rss_mb": _rss_mb(),
                    EPOCH: epoch,
                    "files_decoded": feed.files_decoded if epoch == done + 1 else 0,
                    **({CLONED_FROM: cloned_from} if cloned_from is not None and epoch == done + 1 else {}),
                    **{EXPLORED_PREFIX + k: float(params[k]) for k in settings.explored if k in params},
                    FINISHED: epoch == settings.max_epochs or reached_goal(metrics[metric], settings.stop_at, mode),
                    **placement,
                }
            )
            if kept.due(epoch) or (metrics[FINISHED] and kept.unsaved):
                with tempfile.TemporaryDirectory() as folder:
                    kept.save(model, Path(folder), epoch, best, history, own_id)
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(metrics)
            if metrics[FINISHED]:
                break  # the goal was reached: the trial ends complete, and the driver ends the sweep
    finally:
        # Reused actors run many trials: leave nothing of this one behind.
        del model, kept, snapshot, feed
        keras.backend.clear_session(free_memory=False)


def _trial_id(tune: Any) -> str | None:
    try:
        return str(tune.get_context().get_trial_id())
    except (AttributeError, RuntimeError):
        return None


def _with_params(model: Any, params: dict[str, Any], settings: TrialSettings) -> Any:
    """A model of `params` holding `model`'s weights and optimizer state: PBT explores continuous
    params (learning rate, dropout, a regularizer's strength), none of which changes a weight's
    shape, so the clone goes on exactly where its source was, with the new values."""
    from models.conv2d import build_conv2d

    fresh = build_conv2d(params, settings.input_shape, settings.num_classes)
    fresh.set_weights(model.get_weights())
    fresh.optimizer.build(fresh.trainable_variables)
    for mine, theirs in zip(fresh.optimizer.variables, model.optimizer.variables, strict=False):
        if tuple(mine.shape) == tuple(theirs.shape):
            mine.assign(theirs)
    fresh.optimizer.learning_rate = float(params["learning_rate"])  # after the copy, which held the old one
    return fresh


class _BestWeights:
    """The best epoch's weights, held in memory, and when to write a checkpoint.

    A checkpoint is one snapshot: the model and optimizer as they are now (to go on from), the
    best epoch's weights (the model the sweep keeps) and the best-so-far record. Writing one after
    every epoch cost ~0.15 s each (save + Tune's copy), so it is written where the scheduler may
    stop the trial (its rungs and the last epoch) after an improvement, and whenever
    `checkpoint_every_s` passed since the last one: a dead worker or a killed driver costs at most
    that much of the trial's work.
    """

    def __init__(self, settings: TrialSettings) -> None:
        self.stop_epochs, self.every_s = settings.stop_epochs, settings.checkpoint_every_s
        self.pause_epochs = settings.pause_epochs
        self.weights: list[Any] | None = None
        self.epoch = 0  # the best epoch
        self.unsaved = False  # an improvement no checkpoint holds yet
        self.saved_at = time.monotonic()

    def restore(self, snapshot: Snapshot) -> None:
        self.weights, self.epoch, self.unsaved = snapshot.best_weights, snapshot.best_epoch, False

    def remember(self, model: Any, epoch: int = 0) -> None:
        self.weights, self.epoch, self.unsaved = model.get_weights(), epoch, True

    def due(self, epoch: int) -> bool:
        if self.unsaved and (not self.stop_epochs or epoch in self.stop_epochs):
            return True
        if epoch in self.pause_epochs and self.weights is not None:
            return True  # resumed from here after a pause: the snapshot must be this epoch's
        return self.weights is not None and time.monotonic() - self.saved_at >= self.every_s

    def save(
        self,
        model: Any,
        folder: Path,
        epoch: int,
        best: dict[str, float],
        history: list[dict[str, float]] | None = None,
        trial_id: str | None = None,
    ) -> None:
        """Write the snapshot after `epoch` into `folder`; the state file last, naming the rest."""
        if self.epoch == epoch:  # the model now is the best epoch's: one file holds both
            resume_file = MODEL_FILE
            model.save(folder / MODEL_FILE)
        else:
            resume_file = RESUME_FILE
            model.save(folder / RESUME_FILE)
            current = model.get_weights()
            model.set_weights(self.weights)
            try:
                model.save(folder / MODEL_FILE)
            finally:
                model.set_weights(current)
        files = {name: (folder / name).stat().st_size for name in {MODEL_FILE, resume_file}}
        state = {
            "epoch": epoch,
            "best": best,
            "best_epoch": self.epoch,
            "resume_file": resume_file,
            "files": files,
            "history": history or [],
            "trial_id": trial_id,
        }
        (folder / STATE_FILE).write_text(json.dumps(state))
        self.unsaved, self.saved_at = False, time.monotonic()


def _fit_one_epoch(model: Any, feed: Any, batch_size: int, epoch: int) -> dict[str, float]:
    import keras

    history = model.fit(
        feed.train_x,
        feed.train_y,
        batch_size=batch_size if feed.train_y is not None else None,  # a tf.data feed is batched already
        epochs=epoch,
        initial_epoch=epoch - 1,
        shuffle=feed.train_y is not None,  # a tf.data feed shuffles itself
        validation_data=feed.val,
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
