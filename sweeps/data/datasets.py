"""Datasets: the registry of loaders, preprocessing in one place, and a content digest.

`digits` (scikit-learn's 1,797 real 8x8 handwritten digits) needs no network and is the default.
`mnist`, `fashion_mnist`, `cifar10` come from keras.datasets (downloaded once on a normal machine);
`npz` reads a local file with x_train, y_train and optionally x_test, y_test.
`folder` reads a folder of class subfolders of images (`sweeps.data.folders`); its version is the digest
of its manifest, and data whose decoded size passes `dataset.memory_limit_mb` streams (`sweeps.worker.feed`).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.core.errors import DatasetError
from sweeps.registry import DATASETS

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """Preprocessed, split arrays plus what tracking needs to identify this exact version."""

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    digest: str  # over the raw content and the preprocessing settings
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    extra: dict[str, str] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()  # label i is class_names[i]; () for array datasets (labels are the names)
    manifest: Any = None  # sweeps.data.folders.Manifest of a folder dataset
    stream: Any = None  # sweeps.worker.feed.StreamSpec when the trials stream the files instead of receiving arrays

    scale: float = 1.0  # training pixels were divided by this (see `preprocessing`)

    @property
    def has_test(self) -> bool:
        return self.y_test is not None and len(self.y_test) > 0

    def preprocessing(self) -> dict[str, object]:
        """What turned raw images into the model's input, kept with the model so predict applies
        exactly the same: (N, H, W, C) float32 = raw / divide_by."""
        return {"divide_by": self.scale, "dtype": "float32", "layout": "NHWC"}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def arrays(self) -> Arrays:
        """What a trial needs, as plain arrays (put once into Ray's object store), or, for streamed
        data, the small spec from which each node builds its own decoded cache."""
        if self.stream is not None:
            return {"stream": self.stream}
        return {"x_train": self.x_train, "y_train": self.y_train, "x_val": self.x_val, "y_val": self.y_val}

    def summary(self) -> dict[str, str]:
        return {
            "dataset.name": self.name,
            "dataset.source": self.source,
            "dataset.digest": self.digest,
            "dataset.input_shape": "x".join(map(str, self.input_shape)),
            "dataset.num_classes": str(self.num_classes),
            "dataset.train_size": str(len(self.x_train)),
            "dataset.val_size": str(len(self.x_val)),
            **({"dataset.test_size": str(len(self.y_test))} if self.y_test is not None else {}),
            **({"dataset.class_names": json.dumps(list(self.class_names), ensure_ascii=False)} if self.class_names else {}),
            **({"dataset.streamed": "true"} if self.stream is not None else {}),
            **self.extra,
        }


def content_digest(*arrays: np.ndarray, salt: str = "") -> str:
    """BLAKE2b over every byte, shape and dtype (MLflow's own digest reads only 10,000 values)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(salt.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


# ---------------------------------------------------------------- loaders: raw (x_train, y_train, x_test, y_test)

Raw = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, str]


def load_digits(path: str | None) -> Raw:
    pixels, target = _digits_arrays()
    # Pixels are counts 0..16 of an 8x8 grid: scaled here, since 16 is no dtype's range.
    images = (pixels / 16.0).astype(np.float32)
    return images, target.astype(np.int64), None, None, "sklearn.datasets.load_digits"


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as `load_digits` returns them (images, target), read straight from the file
    scikit-learn ships: importing sklearn.datasets costs 1-1.5 s of every sweep's start-up."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        data_file = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if data_file.is_file():
            data = np.loadtxt(data_file, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits  # another layout of the package: its own loader

    bunch = load_digits()
    return bunch.images, bunch.target


def _keras_loader(name: str) -> Callable[[str | None], Raw]:
    def load(path: str | None) -> Raw:
        if path:
            return load_npz(path)
        import keras

        try:
            (x, y), (xt, yt) = getattr(keras.datasets, name).load_data()
        except Exception as exc:  # the download is the only step that fails here; say what to do
            raise DatasetError(
                "dataset",
                f"downloading keras.datasets.{name} failed ({type(exc).__name__}: {str(exc)[:200]})",
                f"on a machine without network, save the arrays to an .npz with x_train, y_train, x_test, y_test "
                f"and run with dataset={name} dataset.path=/path/to/{name}.npz (or dataset=npz dataset.path=...)",
            ) from None
        return x, y.reshape(-1), xt, yt.reshape(-1), f"keras.datasets.{name}"

    return load


def _npz_file(path: str | None) -> Path:
    if not path:
        raise DatasetError("dataset.path", "no file given", "run with dataset=npz dataset.path=/path/to/file.npz")
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise DatasetError("dataset.path", f"{file} does not exist", "point dataset.path at an existing .npz file")
    return file


def _unreadable(file: Path, exc: Exception) -> DatasetError:
    return DatasetError(
        "dataset.path",
        f"{file} is not a readable .npz ({type(exc).__name__}: {exc})",
        "write it with numpy.savez(path, x_train=..., y_train=...)",
    )


def _lacking(file: Path, names: list[str]) -> None:
    missing = [k for k in ("x_train", "y_train") if k not in names]
    if missing:
        raise DatasetError(
            "dataset.path",
            f"{file} lacks {', '.join(missing)} (has {', '.join(names) or 'nothing'})",
            "save the arrays under the names x_train and y_train (optionally x_test and y_test)",
        )


def load_npz(path: str | None) -> Raw:
    file = _npz_file(path)
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _unreadable(file, exc) from None
    _lacking(file, list(arrays))
    return arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test"), file.as_uri()


load_mnist = _keras_loader("mnist")
load_fashion_mnist = _keras_loader("fashion_mnist")
load_cifar10 = _keras_loader("cifar10")


# ---------------------------------------------------------------- preprocessing, in one place


def image_scale(x: np.ndarray) -> float:
    """The divisor that maps training images into [0, 1]: the dtype's range for integers, the
    training set's maximum for floats above 1. Computed once, from training data only."""
    if x.dtype.kind in "ui":
        return float(np.iinfo(x.dtype).max)
    top = float(x.max()) if x.size else 1.0
    return top if top > 1.0 else 1.0


def _check_images(dtype: np.dtype, shape: tuple[int, ...], key: str) -> None:
    if dtype.kind not in "uif" or dtype == np.bool_:
        raise DatasetError(key, f"images have dtype {dtype}", "store images as integers or floats")
    if len(shape) not in (3, 4):
        raise DatasetError(key, f"images have shape {shape}", "use (N, height, width) or (N, height, width, channels)")


def as_images(x: np.ndarray, key: str, scale: float | None = None) -> np.ndarray:
    """Check and shape images to (N, H, W, C) float32 divided by `scale` (default: their own
    `image_scale`; give the training scale for any other images, as predict does)."""
    _check_images(x.dtype, x.shape, key)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DatasetError(key, "images contain NaN or infinity", "clean the data before the sweep")
    scale = image_scale(x) if scale is None else scale
    return (x.astype(np.float32) / np.float32(scale)).astype(np.float32)


def _labels(y: np.ndarray, n: int, key: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if len(y) != n:
        raise DatasetError(key, f"{len(y)} labels for {n} images", "give exactly one label per image")
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        raise DatasetError(key, "labels are not whole numbers", "use integer class ids 0..K-1")
    if y.dtype.kind not in "uif":
        raise DatasetError(key, f"labels have dtype {y.dtype}", "use integer class ids 0..K-1")
    if y.size and y.min() < 0:
        raise DatasetError(key, f"label {int(y.min())} is negative", "use integer class ids 0..K-1")
    return y.astype(np.int64)


def _check_request(name: str, path: str | None, val_fraction: float, limit: int | None) -> str | None:
    """The checks every dataset request passes first; the path, None where the group left it unset."""
    if name not in DATASETS:  # sweeps.registry: each name's loader, imported here
        raise DatasetError("dataset", f"unknown dataset {name!r}", f"use one of {', '.join(DATASETS)} (dataset=<name>)")
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError("dataset.val_fraction", f"{val_fraction} is not between 0 and 1", "use e.g. 0.2")
    if limit is not None and limit < 2:
        raise DatasetError("dataset.limit", f"{limit} keeps too few images", "use null (all) or a number >= 2")
    return None if path == "???" else path  # a group's mandatory path left unset (OmegaConf's marker survives to_container)


def load_dataset(
    name: str,
    path: str | None = None,
    val_fraction: float = 0.2,
    limit: int | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    output_dir: Path | None = None,
) -> Dataset:
    """Load, check, scale, add the channel axis and split train/validation by seed.

    `options`: the dataset group's other settings (a folder's image_size, color_mode, ...);
    `output_dir`: where a folder's hash cache and manifests are kept (None: no cache)."""
    path = _check_request(name, path, val_fraction, limit)
    entry = DATASETS[name]
    if not entry.arrays:
        return entry.load()(path, val_fraction, limit, seed, options or {}, output_dir)
    x_raw, y_raw, xt_raw, yt_raw, source = entry.load()(path)
    scale = image_scale(np.asarray(x_raw)) if np.asarray(x_raw).dtype.kind in "uif" else 1.0
    x = as_images(np.asarray(x_raw), "dataset x_train", scale)
    y = _labels(y_raw, len(x), "dataset y_train")
    x_test = y_test = None
    if xt_raw is not None and yt_raw is not None:
        x_test = as_images(np.asarray(xt_raw), "dataset x_test", scale)  # the training scale, not its own
        y_test = _labels(yt_raw, len(x_test), "dataset y_test")
    num_classes = int(y.max()) + 1
    if y_test is not None and y_test.size and int(y_test.max()) >= num_classes:
        raise DatasetError("dataset y_test", f"label {int(y_test.max())} never occurs in y_train", "check the labels")
    if num_classes < 2:
        raise DatasetError("dataset y_train", "fewer than two classes", "give labels of at least two classes")
    # Every array the dataset holds: two versions that differ only in their test split differ here too
    # (without a test split, the digest is the one earlier versions computed).
    held = [np.asarray(a) for a in (x_raw, y_raw, xt_raw, yt_raw) if a is not None]
    digest = content_digest(*held, salt=f"val_fraction={val_fraction};limit={limit};seed={seed}")
    order = np.random.default_rng(seed).permutation(len(x))
    if limit is not None:
        order = order[:limit]
    n_val = max(1, int(round(len(order) * val_fraction)))
    val, train = order[:n_val], order[n_val:]
    return Dataset(
        name=name,
        source=source,
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        num_classes=num_classes,
        digest=digest,
        x_test=x_test,
        y_test=y_test,
        scale=scale,
    )


# ---------------------------------------------------------------- image folders


def _split_order(n: int, val_fraction: float, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of n images: a seeded permutation, cut to `limit`."""
    order = np.random.default_rng(seed).permutation(n)
    if limit is not None:
        order = order[:limit]
    n_val = max(1, int(round(len(order) * val_fraction)))
    return order[n_val:], order[:n_val]


def _scan_folder(path: str | None, options: dict[str, Any]) -> tuple[Any, Any]:
    """A folder dataset's checked options and its scan (no image decoded)."""
    from sweeps.data import folders

    if not path:
        raise DatasetError(
            "dataset.path", "no folder given", "run with dataset=folder dataset.path=/path/to/images (one subfolder per class)"
        )
    try:
        opts = folders.parse_options(options)
        return opts, folders.scan(str(path), opts.test_path)
    except folders.FolderError as exc:
        raise DatasetError(exc.key, exc.problem, exc.fix) from None


def load_folder(
    path: str | None, val_fraction: float, limit: int | None, seed: int, options: dict[str, Any], output_dir: Path | None
) -> Dataset:
    from sweeps.data import folders
    from sweeps.worker import feed

    opts, scanned = _scan_folder(path, options)
    h, w = opts.image_size
    decoded_mb = len(scanned.files) * h * w * opts.channels * 4 / 2**20  # as float32, what a trial trains on
    streamed = decoded_mb > opts.memory_limit_mb
    paths = [f.path for f in scanned.files]
    pixels = None
    if streamed:
        bad = folders.check_decodable(paths)
    else:
        pixels, bad = folders.decode_many(paths, opts.image_size, opts.channels)
    bad_keys = [scanned.files[i].key for i in bad]
    if bad and not opts.skip_corrupt:
        raise DatasetError(**_fields(folders.corrupt_error([scanned.files[i].relpath for i in bad], scanned.files[bad[0]].root)))
    keep = np.setdiff1d(np.arange(len(scanned.files)), np.asarray(bad, dtype=np.int64))
    files = [scanned.files[i] for i in keep]
    labels = np.asarray([scanned.class_names.index(f.label) for f in files], dtype=np.int64)
    is_train = np.asarray([f.split == "train" for f in files])
    train_idx, test_idx = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    counts = np.bincount(labels[train_idx], minlength=len(scanned.class_names))
    if (counts == 0).any():  # every image of a class was skipped as corrupt
        empty = scanned.class_names[int(np.argmin(counts))]
        raise DatasetError(
            "dataset.path", f"class {empty!r} has no decodable images", "add readable images to it or remove the folder"
        )
    cache = folders.manifest_store(output_dir) / "cache" if output_dir is not None else None
    manifest, read = folders.build_manifest(scanned, cache, bad_keys)
    tr, va = _split_order(len(train_idx), val_fraction, limit, seed)
    train, val = train_idx[tr], train_idx[va]
    extra = {
        "dataset.files": str(len(files)),
        "dataset.files_hashed": str(read),
        "dataset.ignored_files": str(len(scanned.ignored)),
        "dataset.skipped_corrupt": str(len(bad)),
        "dataset.options": opts.describe(),
    }
    common = dict(
        name="folder",
        source=Path(scanned.root).as_uri(),
        num_classes=len(scanned.class_names),
        digest=manifest.digest,
        y_train=labels[train],
        y_val=labels[val],
        y_test=labels[test_idx] if len(test_idx) else None,
        class_names=scanned.class_names,
        manifest=manifest,
        extra=extra,
        scale=255.0,
    )
    if streamed:
        spec = feed.StreamSpec(
            version=f"{manifest.digest}-{h}x{w}x{opts.channels}",
            size=opts.image_size,
            channels=opts.channels,
            train_paths=tuple(files[i].path for i in train),
            y_train=labels[train],
            val_paths=tuple(files[i].path for i in val),
            y_val=labels[val],
            test_paths=tuple(files[i].path for i in test_idx),
            y_test=labels[test_idx],
            cache_dir=opts.cache_dir,
        )
        shape = (h, w, opts.channels)
        return Dataset(
            x_train=feed.shape_only(len(train), shape),
            x_val=feed.shape_only(len(val), shape),
            x_test=feed.shape_only(len(test_idx), shape) if len(test_idx) else None,
            stream=spec,
            **common,
        )
    assert pixels is not None
    images = pixels[keep]

    def scaled(idx: np.ndarray) -> np.ndarray:
        return images[idx].astype(np.float32) / np.float32(255.0)

    return Dataset(x_train=scaled(train), x_val=scaled(val), x_test=scaled(test_idx) if len(test_idx) else None, **common)


def _fields(error: Any) -> dict[str, str]:
    return {"field": error.field, "problem": error.problem, "fix": error.fix}


def record_folder(dataset: Dataset, output_dir: Path, tracker: Any, run_id: str) -> None:
    """A folder dataset's manifest: kept under the outputs folder (for `datasets diff` and resume)
    and logged as an artifact of the sweep's run. No-op for array datasets."""
    if dataset.manifest is None:
        return
    from sweeps.data import folders

    folders.save_manifest(output_dir, dataset.manifest)
    tracker.log_dict(run_id, dataset.manifest.to_json(), "dataset/manifest.json")


# ---------------------------------------------------------------- input facts, for space=auto


@dataclass(frozen=True)
class InputFacts:
    """What `space=auto` derives a space from (`sweeps.autospace`), read without loading the images."""

    shape: tuple[int, int, int]  # height, width, channels of the model's input
    classes: int
    train_images: int  # in the training split (before `input_facts` takes validation and limit out: after)
    field: str  # the setting that decides the shape, for an error that names it


def input_facts(
    name: str, path: str | None, val_fraction: float, limit: int | None, seed: int, options: dict[str, Any] | None = None
) -> InputFacts:
    """The input shape, class count and training images (after `limit` and the validation split) of
    a dataset, cheaply where its registry entry says how (`facts`: a header, a folder scan, known
    sizes), else by loading it; bad input raises the loader's own errors."""
    path = _check_request(name, path, val_fraction, limit)
    entry = DATASETS[name]
    if entry.facts is None:
        data = load_dataset(name, path, val_fraction, limit, seed, options)
        return InputFacts(data.input_shape, data.num_classes, len(data.x_train), "dataset")
    module, _, function = entry.facts.partition(":")
    import importlib

    found: InputFacts = getattr(importlib.import_module(module), function)(path, options or {})
    n = found.train_images if limit is None else min(found.train_images, limit)
    return replace(found, train_images=n - max(1, int(round(n * val_fraction))))


def digits_facts(path: str | None, options: dict[str, Any]) -> InputFacts:
    return InputFacts((8, 8, 1), 10, 1797, "dataset")


def _keras_facts(shape: tuple[int, int, int], images: int) -> Callable[[str | None, dict[str, Any]], InputFacts]:
    """keras.datasets' published sizes (10 classes each); with dataset.path, the file's own."""

    def facts(path: str | None, options: dict[str, Any]) -> InputFacts:
        return npz_facts(path, options) if path else InputFacts(shape, 10, images, "dataset")

    return facts


mnist_facts = _keras_facts((28, 28, 1), 60_000)
fashion_mnist_facts = _keras_facts((28, 28, 1), 60_000)
cifar10_facts = _keras_facts((32, 32, 3), 50_000)


def npz_facts(path: str | None, options: dict[str, Any]) -> InputFacts:
    """x_train's shape from its .npy header (the images are not read), the classes from y_train."""
    file = _npz_file(path)
    try:
        with np.load(file, allow_pickle=False) as npz:
            _lacking(file, list(npz.files))
            with npz.zip.open("x_train.npy") as member:
                version = np.lib.format.read_magic(member)
                readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                shape, _, dtype = readers[version](member) if version in readers else (npz["x_train"].shape, 0, None)
                dtype = npz["x_train"].dtype if dtype is None else dtype
            y = npz["y_train"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise _unreadable(file, exc) from None
    _check_images(np.dtype(dtype), tuple(shape), "dataset x_train")
    labels = _labels(y, int(shape[0]), "dataset y_train")
    classes = int(labels.max()) + 1 if labels.size else 0
    if classes < 2:
        raise DatasetError("dataset y_train", "fewer than two classes", "give labels of at least two classes")
    height, width, *rest = shape[1:]
    return InputFacts((int(height), int(width), int(rest[0]) if rest else 1), classes, int(shape[0]), "dataset.path")


def folder_facts(path: str | None, options: dict[str, Any]) -> InputFacts:
    """A folder's input from dataset.image_size and color_mode, classes and images from its scan
    (no image is decoded; corrupt ones are found when the folder is loaded)."""
    opts, scanned = _scan_folder(path, options)
    train = sum(1 for f in scanned.files if f.split == "train")
    return InputFacts((*opts.image_size, opts.channels), len(scanned.class_names), train, "dataset.image_size")
