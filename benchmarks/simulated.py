"""A simulated trial for scale benchmarks only: it sleeps `epoch_s` per epoch instead of training and
reports a learning curve that depends on the params, so TPE and ASHA have signal.

Not reachable from a user's config: the product's trainable is replaced only inside processes that
run with benchmarks/probe on PYTHONPATH and BENCH_SIMULATE_EPOCH_S set (see probe/sitecustomize.py),
which `python -m benchmarks scale` does for its own runs. Everything else is the product's real
path: Hydra config, Optuna search and its storage, Ray Tune, the scheduler, the MLflow writer, the
progress line, recovery bookkeeping, the report.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

EPOCH_S_ENV = "BENCH_SIMULATE_EPOCH_S"
CHECKPOINT_KB_ENV = "BENCH_SIMULATE_CHECKPOINT_KB"  # size of the fake model file each checkpoint holds


def quality(params: dict[str, Any]) -> float:
    """The accuracy a trial converges to: best near learning_rate 3e-3, better with more filters
    and a moderate dropout; any other param adds a small, fixed, param-dependent offset."""
    q = 0.95
    lr = params.get("learning_rate")
    if isinstance(lr, (int, float)) and lr > 0:
        q -= 0.12 * abs(math.log10(lr) - math.log10(3e-3))
    for key in ("filters", "filters_0", "base_filters"):
        if isinstance(params.get(key), (int, float)):
            q -= 0.05 / math.log2(max(2.0, float(params[key])))
    if isinstance(params.get("dropout"), (int, float)):
        q -= 0.1 * abs(float(params["dropout"]) - 0.25)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).digest()
    q += (digest[0] / 255 - 0.5) * 0.04
    return min(0.995, max(0.1, q))


def curve(params: dict[str, Any], epoch: int) -> dict[str, float]:
    """val/train accuracy and loss after `epoch` epochs: a saturating curve towards quality(params)."""
    q = quality(params)
    rate = 0.6 + 0.4 * ((hash(json.dumps(params, sort_keys=True, default=str)) % 7) / 7)
    acc = 0.1 + (q - 0.1) * (1 - math.exp(-rate * epoch))
    return {
        "val_accuracy": acc,
        "train_accuracy": min(1.0, acc + 0.02),
        "val_loss": -math.log(max(acc, 1e-6)),
        "train_loss": -math.log(max(min(1.0, acc + 0.02), 1e-6)) + 1e-3,
    }


def simulated_trial(config: dict[str, Any], data: dict[str, Any], settings: Any) -> None:
    """Drop-in for sweeps.worker.trainable.train_trial: the same reports (metrics, best values, the finished
    flag, checkpoints where the scheduler may stop the trial), no TensorFlow."""
    from ray import tune

    from sweeps.core.metrics import EPOCH_METRICS
    from sweeps.core.protocol import FINISHED, MODEL_FILE, STATE_FILE, best_key

    epoch_s = float(os.environ.get(EPOCH_S_ENV, "1"))
    checkpoint_kb = int(os.environ.get(CHECKPOINT_KB_ENV, "256"))
    params = {**settings.model, **config}
    best: dict[str, float] = {}
    for epoch in range(1, settings.max_epochs + 1):
        time.sleep(epoch_s)
        metrics: dict[str, Any] = curve(params, epoch)
        improved = False
        for name, mode in settings.objectives:
            if name in EPOCH_METRICS:
                value = metrics[name]
                if name not in best or (value > best[name] if mode == "max" else value < best[name]):
                    best[name] = value
                    improved = improved or name == settings.objectives[0][0]
        metrics.update({best_key(n): v for n, v in best.items()})
        metrics.update({"params": 1000, "flops": 1000, "worker_rss_mb": 0.0, FINISHED: epoch == settings.max_epochs})
        if improved and (not settings.stop_epochs or epoch in settings.stop_epochs):
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / MODEL_FILE).write_bytes(b"\0" * (checkpoint_kb * 1024))
                (Path(folder) / STATE_FILE).write_text(json.dumps({"epoch": epoch, "best": best}))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(metrics)
