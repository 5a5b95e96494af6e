"""float32 against mixed float16 for the models a sweep builds, on whatever device Keras sees.

`python -m benchmarks.precision [--images N] [--epochs E]` builds, with the product's own builder,
the largest model of the `vgg` space (3 blocks, 32 filters doubling, dense 256) for CIFAR-10's
shape (32x32x3, 10 classes), trains it on random images of that shape (speed does not depend on
content), and prints per precision and batch size: the first epoch (tracing/compilation
included), the median later epoch, training images per second, and the speed-up of mixed float16.
Needs only keras, numpy and pyyaml, so it also runs under another Keras backend
(KERAS_BACKEND=jax) on a machine without TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CONF = Path(__file__).resolve().parent.parent / "conf" / "model" / "conv2d.yaml"
VGG_LARGEST = {
    "blocks": 3,
    "filters": 32,
    "filters_growth": 2,
    "kernel_size": 3,
    "padding": "same",
    "kernel_initializer": "he_normal",
    "dense_units": 256,
    "dropout": 0.3,
    "learning_rate": 1e-3,
}


def params_for(mixed: bool, batch_size: int, jit: bool) -> dict[str, Any]:
    return {
        **yaml.safe_load(CONF.read_text()),
        **VGG_LARGEST,
        "mixed_precision": mixed,
        "batch_size": batch_size,
        "jit_compile": jit,
    }


def time_epochs(params: dict[str, Any], x: np.ndarray, y: np.ndarray, epochs: int) -> list[float]:
    import keras

    from models.conv2d import build_conv2d

    keras.backend.clear_session()
    model = build_conv2d(params, x.shape[1:], 10)
    times = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.fit(x, y, batch_size=params["batch_size"], epochs=epoch, initial_epoch=epoch - 1, verbose=0)
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-sizes", default="128,512")
    parser.add_argument(
        "--jit", action="store_true", help="compile with XLA (always on under JAX: without it Keras dispatches op by op)"
    )
    args = parser.parse_args(argv)

    import keras

    jit = args.jit or keras.backend.backend() == "jax"

    rng = np.random.default_rng(0)
    x = rng.random((args.images, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, args.images)
    devices = _devices()
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, devices {devices}; {args.images} images 32x32x3, jit_compile={jit}"
    )
    print(f"{'batch':>6} {'precision':>14} {'first epoch s':>14} {'later epoch s':>14} {'images/s':>10} {'speed-up':>9}")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        rates = {}
        for mixed in (False, True):
            times = time_epochs(params_for(mixed, batch_size, jit), x, y, args.epochs)
            later = statistics.median(times[1:]) if len(times) > 1 else times[0]
            rates[mixed] = args.images / later
            speedup = f"{rates[True] / rates[False]:.2f}x" if mixed else ""
            print(
                f"{batch_size:>6} {'mixed_float16' if mixed else 'float32':>14} {times[0]:>14.2f} {later:>14.2f} "
                f"{rates[mixed]:>10.0f} {speedup:>9}",
                flush=True,
            )


def _devices() -> str:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "jax":
            import jax

            return ", ".join(str(d.device_kind) for d in jax.devices())
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return ", ".join(g.name for g in gpus) or "CPU"
    except Exception as exc:  # noqa: BLE001 - a label only
        return f"unknown ({exc})"


if __name__ == "__main__":
    main()
