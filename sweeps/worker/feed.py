"""The data feed of a trial: arrays from Ray's object store, or a folder streamed through tf.data.

Streamed data (a folder whose decoded size passes `dataset.memory_limit_mb`) never reaches the
driver's memory. Each node builds, once per dataset version, a decoded cache: the files are read,
decoded and resized by a parallel `tf.data` pipeline (the same Pillow decoder as the in-memory
path, so both see the same pixels) into uint8 `.npy` files in a node-local folder, under a file
lock so concurrent trials of one node wait for one build instead of decoding again. Trials then
read batches from the memory-mapped cache through `tf.data` (shuffle, gather, scale, prefetch):
the OS page cache, not the trial, holds what fits.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")
CACHED = ("train", "val")  # what trials read; the test split is scored once, in the driver, never by a trial
DONE = "done.json"


@dataclass(frozen=True)
class StreamSpec:
    """What a node needs to build and read its cache: small and picklable (paths and labels)."""

    version: str  # the manifest digest and the decoded shape: the cache key
    size: tuple[int, int]
    channels: int
    train_paths: tuple[str, ...]
    y_train: np.ndarray
    val_paths: tuple[str, ...]
    y_val: np.ndarray
    test_paths: tuple[str, ...] = ()
    y_test: np.ndarray | None = None
    cache_dir: str | None = None  # default: <temp folder>/sweeps-cache (node-local)

    def paths(self, split: str) -> tuple[str, ...]:
        return {"train": self.train_paths, "val": self.val_paths, "test": self.test_paths}[split]

    def labels(self, split: str) -> np.ndarray:
        found = {"train": self.y_train, "val": self.y_val, "test": self.y_test}[split]
        return np.zeros(0, np.int64) if found is None else found

    @property
    def folder(self) -> Path:
        return Path(self.cache_dir or os.path.join(tempfile.gettempdir(), "sweeps-cache")) / self.version

    def sample_paths(self) -> list[str]:
        """A few files a node must see to stream this data (first and last of each split)."""
        picks = []
        for split in SPLITS:
            p = self.paths(split)
            picks += [p[0], p[-1]] if p else []
        return sorted(set(picks))


def shape_only(n: int, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only float32 array of n images of `shape` that holds one value: carries the shape and
    length of streamed data where an array is expected (tracking's schema, counts) at no memory."""
    view = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(n, *shape), strides=(0,) * (len(shape) + 1))
    view.flags.writeable = False
    return view


# ---------------------------------------------------------------- the node-local decoded cache


def _decode_into(paths: tuple[str, ...], spec: StreamSpec, out: np.ndarray, batch: int = 256) -> None:
    """Read, decode and resize `paths` into `out` with a parallel tf.data pipeline."""
    import tensorflow as tf

    from sweeps.data.folders import CorruptImage, decode_file

    h, w = spec.size

    def load(path: bytes) -> np.ndarray:
        name = path.decode()
        try:
            return decode_file(name, spec.size, spec.channels)
        except CorruptImage as exc:  # checked in the driver; a file changed since then
            raise ValueError(f"{name} cannot be decoded as an image ({exc})") from None

    def mapped(path: Any) -> Any:
        image = tf.numpy_function(load, [path], tf.uint8, stateful=False)
        image.set_shape((h, w, spec.channels))
        return image

    pipeline = (
        tf.data.Dataset.from_tensor_slices(list(paths))
        .map(mapped, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch)
        .prefetch(2)
    )
    at = 0
    for images in pipeline.as_numpy_iterator():
        out[at : at + len(images)] = images
        at += len(images)


def ensure_cache(spec: StreamSpec) -> tuple[Path, int]:
    """The node's decoded cache of `spec` (built here if missing), and how many files this call
    decoded (0 when another trial of this node built it already)."""
    folder = spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / DONE).is_file():
        return folder, 0
    with open(folder.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per node; the others wait and reuse it
        try:
            if (folder / DONE).is_file():
                return folder, 0
            started, decoded = time.monotonic(), 0
            for split in CACHED:
                paths = spec.paths(split)
                tmp = folder / f".{split}.npy.tmp"
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), *spec.size, spec.channels))
                if paths:
                    _decode_into(paths, spec, out)
                out.flush()
                del out
                os.replace(tmp, folder / f"{split}.npy")
                decoded += len(paths)
            record = {"files_decoded": decoded, "seconds": round(time.monotonic() - started, 3), "pid": os.getpid()}
            (folder / DONE).write_text(json.dumps(record))
            return folder, decoded
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cached_images(spec: StreamSpec, split: str) -> np.ndarray:
    """The decoded uint8 images of `split`, memory-mapped from the node's cache."""
    folder, _ = ensure_cache(spec)
    return np.load(folder / f"{split}.npy", mmap_mode="r")


def batches(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0) -> Any:
    """tf.data over memory-mapped uint8 images: (shuffled) index batches, gathered, scaled to
    float32 in [0, 1] as the in-memory path does, prefetched."""
    import tensorflow as tf

    n = len(labels)
    shape = images.shape[1:]

    def gather(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.sort(index)  # sequential reads of the mapped file
        return np.asarray(images[order]), labels[order]

    def mapped(index: Any) -> Any:
        x, y = tf.numpy_function(gather, [index], (tf.uint8, tf.int64), stateful=False)
        x.set_shape((None, *shape))
        y.set_shape((None,))
        return tf.cast(x, tf.float32) / 255.0, y

    data = tf.data.Dataset.range(n)
    if shuffle:
        data = data.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).map(mapped, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class _Joined:
    """Two memory-mapped splits read as one, the first then the second, without copying either:
    what `batches` gathers from (a sorted index, so its rows come first-split first, as the
    concatenated labels do)."""

    def __init__(self, first: np.ndarray, second: np.ndarray) -> None:
        self.first, self.second = first, second

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.first) + len(self.second), *self.first.shape[1:])

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        index, cut = np.asarray(index), len(self.first)
        return np.concatenate([self.first[index[index < cut]], self.second[index[index >= cut] - cut]])


def train_and_validation_batches(spec: StreamSpec, batch_size: int, seed: int) -> tuple[Any, int]:
    """A refit's input from a streamed folder: train then validation, shuffled, from this node's
    decoded cache (built here if no trial of this node built it); and how many images that is."""
    images = _Joined(cached_images(spec, "train"), cached_images(spec, "val"))
    labels = np.concatenate([spec.labels("train"), spec.labels("val")])
    return batches(images, labels, batch_size, shuffle=True, seed=seed), len(labels)


@dataclass
class Feed:
    """What `model.fit` takes: (x, y) arrays, or a tf.data dataset with y None."""

    train_x: Any
    train_y: Any
    val: Any  # validation_data
    files_decoded: int = 0  # files this trial decoded into its node's cache (0: arrays, or the cache was there)


def open_feed(data: dict[str, Any], batch_size: int, seed: int) -> Feed:
    """The trial's inputs from what the driver sent (`Dataset.arrays()`)."""
    spec = data.get("stream")
    if spec is None:
        return Feed(data["x_train"], data["y_train"], (data["x_val"], data["y_val"]))
    _, decoded = ensure_cache(spec)
    train = batches(cached_images(spec, "train"), spec.labels("train"), batch_size, shuffle=True, seed=seed)
    val = batches(cached_images(spec, "val"), spec.labels("val"), batch_size, shuffle=False)
    return Feed(train, None, val, decoded)
