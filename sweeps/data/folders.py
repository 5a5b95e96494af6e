"""Image folders as datasets: one subfolder per class, a manifest that is the dataset's version,
a hash cache that makes re-digesting an unchanged folder cheap, and one decoder for every path.

The layout is Keras' `image_dataset_from_directory`: DIR/<class>/**/<image>, labels from the sorted
class folder names. A test split comes from DIR/train + DIR/test, or from `dataset.test_path`.

The manifest lists every image (split, path relative to its split folder, size, BLAKE2b of the
content, class name); its digest is the dataset version. File contents are hashed once: a cache
keyed by (path, size, modification time) under the outputs folder answers for unchanged files.

Images are decoded by one function (`decode_file`, Pillow): the driver uses it for data that fits
in memory, the trials' streaming pipeline (`sweeps.worker.feed`) for data that does not, so both paths
see the same pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sweeps.core.errors import FolderError, SweepsError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
COLOR_MODES = {"rgb": 3, "grayscale": 1}
MANIFEST_VERSION = 1
_CHUNK = 1 << 20


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class FolderOptions:
    image_size: tuple[int, int] = (64, 64)
    color_mode: str = "rgb"
    test_path: str | None = None
    skip_corrupt: bool = False
    memory_limit_mb: float = 2048.0  # decoded (float32) data above this streams from disk
    cache_dir: str | None = None  # node-local decoded cache of streamed data (default: the temp folder)

    @property
    def channels(self) -> int:
        return COLOR_MODES[self.color_mode]

    def describe(self) -> str:
        return f"image_size={self.image_size[0]}x{self.image_size[1]};color_mode={self.color_mode}"


def parse_options(raw: Mapping[str, Any]) -> FolderOptions:
    """`dataset.*` settings of a folder dataset, checked; raises FolderError naming the key."""
    defaults = FolderOptions()
    size = raw.get("image_size", list(defaults.image_size))
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise FolderError(
            "dataset.image_size", f"{size!r} is not two positive integers", "write dataset.image_size=[64,64] (height, width)"
        )
    mode = raw.get("color_mode", defaults.color_mode)
    if mode not in COLOR_MODES:
        raise FolderError(
            "dataset.color_mode",
            f"{mode!r} is not rgb or grayscale",
            "set dataset.color_mode=rgb or dataset.color_mode=grayscale",
        )
    skip = raw.get("skip_corrupt", False)
    if not isinstance(skip, bool):
        raise FolderError("dataset.skip_corrupt", f"{skip!r} is not true or false", "set dataset.skip_corrupt=true or false")
    limit = raw.get("memory_limit_mb", defaults.memory_limit_mb)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
        raise FolderError(
            "dataset.memory_limit_mb",
            f"{limit!r} is not a positive number",
            "set dataset.memory_limit_mb=2048 (megabytes of decoded images held in memory)",
        )
    test_path, cache_dir = raw.get("test_path"), raw.get("cache_dir")
    return FolderOptions(
        (int(size[0]), int(size[1])),
        str(mode),
        str(test_path) if test_path else None,
        skip,
        float(limit),
        str(cache_dir) if cache_dir else None,
    )


# ---------------------------------------------------------------- scanning


class Found(NamedTuple):
    """One image file (a tuple: tens of thousands are made per scan)."""

    split: str  # "train" or "test"
    root: str  # the split's folder (absolute)
    relpath: str  # posix path below root: <class>/.../<file>
    label: str  # the class folder's name
    path: str  # absolute
    key: str  # <split>/<relpath>: unique over the dataset


@dataclass(frozen=True)
class Scan:
    root: str  # dataset.path, absolute
    class_names: tuple[str, ...]
    files: tuple[Found, ...]
    ignored: tuple[str, ...]  # non-image files, relative to root


def _folder(path: str | os.PathLike[str], key: str) -> Path:
    folder = Path(path).expanduser()
    fix = (
        "point dataset.path at a folder with one subfolder of images per class"
        if key == "dataset.path"
        else f"point {key} at a folder of class subfolders"
    )
    if not folder.exists():
        raise FolderError(key, f"{folder} does not exist", fix)
    if not folder.is_dir():
        raise FolderError(key, f"{folder} is a file, not a folder", fix)
    return folder.resolve()


def _walk(folder: str) -> Iterable[os.DirEntry[str]]:
    """Every file below `folder`, depth first, following no symlinked folders twice."""
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    stack.append(entry.path)
                elif entry.is_file():
                    yield entry


def _classes(root: Path, key: str) -> list[str]:
    names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise FolderError(
            key, f"{root} has no class subfolders", f"put the images in one subfolder per class: {root}/<class name>/<image>"
        )
    return names


def _split_files(split: str, root: Path, classes: Sequence[str], key: str, ignored: list[str], base: Path) -> list[Found]:
    files: list[Found] = []
    cut, base_cut = len(str(root)) + 1, len(str(base)) + 1
    for name in classes:
        count = 0
        for entry in _walk(str(root / name)):
            if entry.name.startswith(".") or not entry.name.lower().endswith(IMAGE_SUFFIXES):
                ignored.append(entry.path[base_cut:].replace(os.sep, "/"))
                continue
            rel = entry.path[cut:].replace(os.sep, "/")
            files.append(Found(split, str(root), rel, name, entry.path, f"{split}/{rel}"))
            count += 1
        if count == 0:
            raise FolderError(
                key,
                f"class folder {name!r} in {root} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                "add images to it or remove the folder",
            )
    return files


def scan(path: str, test_path: str | None = None) -> Scan:
    """Find the classes and every image (and the files that are not images) below `path`."""
    root = _folder(path, "dataset.path")
    train_root, test_root = root, None
    if test_path:
        test_root = _folder(test_path, "dataset.test_path")
    elif (root / "train").is_dir() and (root / "test").is_dir():
        train_root, test_root = root / "train", root / "test"
    loose = [e.name for e in os.scandir(train_root) if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)]
    hint = (
        f" ({len(loose)} images lie directly in it: is it one class's folder? point dataset.path at the folder above)"
        if loose
        else ""
    )
    classes = _classes(train_root, "dataset.path")
    if len(classes) < 2:
        raise FolderError(
            "dataset.path",
            f"{train_root} has one class folder ({classes[0]!r}){hint}",
            "a classifier needs at least two classes: add a subfolder per class",
        )
    # Files beside the class folders belong to no class: ignored and counted, as non-images are.
    ignored: list[str] = [
        os.path.relpath(e.path, root).replace(os.sep, "/")
        for folder in {root, train_root, test_root} - {None}
        for e in os.scandir(folder)
        if e.is_file()
    ]  # type: ignore[arg-type]
    files = _split_files("train", train_root, classes, "dataset.path", ignored, root)
    if test_root is not None:
        test_key = "dataset.test_path" if test_path else "dataset.path"
        test_classes = _classes(test_root, test_key)
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise FolderError(
                test_key,
                f"test classes {', '.join(map(repr, unknown))} have no folder in {train_root}",
                "name the test class folders as the training ones",
            )
        files += _split_files("test", test_root, test_classes, test_key, ignored, root)
    files.sort(key=lambda f: (f.split, f.relpath))
    return Scan(str(root), tuple(classes), tuple(files), tuple(sorted(ignored)))


# ---------------------------------------------------------------- hashing with a cache


def _read_hash(path: str) -> tuple[int, int, str]:
    """(size, mtime_ns, BLAKE2b) of one file: one open, one fstat, one read for a small file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        stat = os.fstat(fd)
        chunk = os.read(fd, _CHUNK)
        h = hashlib.blake2b(chunk, digest_size=16)
        while len(chunk) == _CHUNK:
            chunk = os.read(fd, _CHUNK)
            h.update(chunk)
    finally:
        os.close(fd)
    return stat.st_size, stat.st_mtime_ns, h.hexdigest()


def file_hash(path: str) -> str:
    return _read_hash(path)[2]


def _cache_file(cache_dir: Path, root: str) -> Path:
    return cache_dir / f"hashes-{hashlib.blake2b(root.encode(), digest_size=8).hexdigest()}.json"


def hash_files(files: Sequence[Found], cache_dir: Path | None, root: str) -> tuple[list[tuple[int, int, str]], int]:
    """(size, mtime_ns, content hash) of every file, and how many were read. A file whose (size,
    mtime) the cache holds is only stat'ed, not read; one the cache lacks is opened once (fstat +
    read). Serial: for small files the system calls dominate, and threads only add contention for
    the GIL."""
    cached: dict[str, list[Any]] = {}
    cache_path = _cache_file(cache_dir, root) if cache_dir is not None else None
    if cache_path is not None and cache_path.is_file():
        try:
            cached = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cached = {}
    out: list[tuple[int, int, str]] = []
    read = 0
    stat = os.stat
    for f in files:
        hit = cached.get(f.key)
        if hit is not None:
            st = stat(f.path)
            if hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                out.append((hit[0], hit[1], hit[2]))
                continue
        out.append(_read_hash(f.path))
        read += 1
    if cache_path is not None and (read or len(cached) != len(files)):
        fresh = {f.key: value for f, value in zip(files, out)}
        _atomic_write(cache_path, json.dumps(fresh, separators=(",", ":")))
    return out, read


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------- the manifest (the dataset version)


class Entry(NamedTuple):
    split: str
    relpath: str
    size: int
    hash: str
    label: str

    def line(self) -> str:
        return f"{self.split}\t{self.relpath}\t{self.size}\t{self.hash}\t{self.label}\n"


@dataclass(frozen=True)
class Manifest:
    root: str
    class_names: tuple[str, ...]
    entries: tuple[Entry, ...]
    ignored: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # undecodable files left out with dataset.skip_corrupt=true
    digest: str = ""

    @staticmethod
    def make(
        root: str, class_names: Sequence[str], entries: Sequence[Entry], ignored: Sequence[str] = (), skipped: Sequence[str] = ()
    ) -> Manifest:
        ordered = tuple(sorted(entries, key=lambda e: (e.split, e.relpath)))
        return Manifest(root, tuple(class_names), ordered, tuple(ignored), tuple(skipped), manifest_digest(ordered, class_names))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "digest": self.digest,
            "root": self.root,
            "class_names": list(self.class_names),
            "columns": ["split", "path", "size", "blake2b", "label"],
            "files": [[e.split, e.relpath, e.size, e.hash, e.label] for e in self.entries],
            "ignored": list(self.ignored),
            "skipped": list(self.skipped),
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Manifest:
        entries = tuple(Entry(str(s), str(p), int(n), str(h), str(lab)) for s, p, n, h, lab in data["files"])
        return Manifest(
            str(data["root"]),
            tuple(data["class_names"]),
            entries,
            tuple(data.get("ignored", ())),
            tuple(data.get("skipped", ())),
            str(data["digest"]),
        )

    def counts(self, split: str | None = None) -> Counter[str]:
        return Counter(e.label for e in self.entries if split is None or e.split == split)


def manifest_digest(entries: Sequence[Entry], class_names: Sequence[str]) -> str:
    text = "classes\t" + "\t".join(class_names) + "\n" + "".join(e.line() for e in entries)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def build_manifest(scanned: Scan, cache_dir: Path | None, skipped: Sequence[str] = ()) -> tuple[Manifest, int]:
    """(manifest, files read). `skipped`: keys (split/relpath) of undecodable files to leave out."""
    stats, read = hash_files(scanned.files, cache_dir, scanned.root)
    left_out = set(skipped)
    entries = [
        Entry(f.split, f.relpath, size, digest, f.label)
        for f, (size, _, digest) in zip(scanned.files, stats)
        if f.key not in left_out
    ]
    return Manifest.make(scanned.root, scanned.class_names, entries, scanned.ignored, sorted(left_out)), read


def manifest_store(output_dir: Path) -> Path:
    """Where manifests are kept for `datasets diff` and for naming what changed on resume."""
    return output_dir / "datasets"


def save_manifest(output_dir: Path, manifest: Manifest) -> Path:
    path = manifest_store(output_dir) / "manifests" / f"{manifest.digest}.json"
    if not path.is_file():
        _atomic_write(path, json.dumps(manifest.to_json(), ensure_ascii=False))
    return path


def find_manifest(output_dir: Path, digest: str) -> Manifest | None:
    """The stored manifest whose digest is or starts with `digest` (None if none or ambiguous)."""
    folder = manifest_store(output_dir) / "manifests"
    found = sorted(folder.glob(f"{digest}*.json")) if digest and folder.is_dir() else []
    if len(found) != 1:
        return None
    return Manifest.from_json(json.loads(found[0].read_text()))


# ---------------------------------------------------------------- what changed between two versions


@dataclass(frozen=True)
class Diff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]  # same path, other content or label
    counts_a: dict[str, int] = field(default_factory=dict)
    counts_b: dict[str, int] = field(default_factory=dict)

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def brief(self, limit: int = 3) -> str:
        """One line: '1 changed (train/cat/1.jpg), 2 added (...)'."""
        parts = []
        for label, items in (("changed", self.changed), ("added", self.added), ("removed", self.removed)):
            if items:
                more = f", +{len(items) - limit} more" if len(items) > limit else ""
                parts.append(f"{len(items)} {label} ({', '.join(items[:limit])}{more})")
        return ", ".join(parts) or "no file changed"


def diff(a: Manifest, b: Manifest) -> Diff:
    left = {f"{e.split}/{e.relpath}": e for e in a.entries}
    right = {f"{e.split}/{e.relpath}": e for e in b.entries}
    changed = sorted(k for k in left.keys() & right.keys() if (left[k].hash, left[k].label) != (right[k].hash, right[k].label))
    return Diff(
        added=tuple(sorted(right.keys() - left.keys())),
        removed=tuple(sorted(left.keys() - right.keys())),
        changed=tuple(changed),
        counts_a=dict(sorted(a.counts().items())),
        counts_b=dict(sorted(b.counts().items())),
    )


# ---------------------------------------------------------------- decoding: one function for every path


class CorruptImage(SweepsError, ValueError):
    pass


def decode_file(path: str, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image -> uint8 (H, W, C): first frame of a GIF, any mode converted to the colour mode
    (a grayscale/RGB mix is no error), resized bilinearly to `size` (height, width)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.seek(0)
            converted = image.convert("RGB" if channels == 3 else "L")
            if converted.size != (size[1], size[0]):
                converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise CorruptImage(f"{type(exc).__name__}: {str(exc)[:120]}") from None
    return pixels.reshape(size[0], size[1], channels)


def decode_many(
    paths: Sequence[str], size: tuple[int, int], channels: int, out: np.ndarray | None = None, threads: int | None = None
) -> tuple[np.ndarray, list[int]]:
    """Decode `paths` into `out` (uint8, N x H x W x C; allocated if None) on a few threads (Pillow
    releases the GIL while it decodes). Returns (out, indices of files that could not be decoded)."""
    if out is None:
        out = np.zeros((len(paths), size[0], size[1], channels), dtype=np.uint8)
    bad: list[int] = []

    def one(i: int) -> None:
        try:
            out[i] = decode_file(paths[i], size, channels)
        except CorruptImage:
            bad.append(i)

    with ThreadPoolExecutor(max_workers=threads or min(8, (os.cpu_count() or 1) * 2)) as pool:
        list(pool.map(one, range(len(paths)), chunksize=32))
    return out, sorted(bad)


def corrupt_error(relpaths: Sequence[str], root: str) -> FolderError:
    more = f" and {len(relpaths) - 1} more" if len(relpaths) > 1 else ""
    return FolderError(
        "dataset.path",
        f"{os.path.join(root, relpaths[0])} cannot be decoded as an image{more}",
        "replace or remove the file, or set dataset.skip_corrupt=true to skip such files (they are counted and logged)",
    )


def check_decodable(paths: Sequence[str], threads: int | None = None) -> list[int]:
    """Indices of files Pillow cannot even open and verify (headers, PNG checksums): the cheap check
    for streamed data, whose pixels are decoded later on the workers."""
    from PIL import Image

    bad: list[int] = []

    def one(i: int) -> None:
        try:
            with Image.open(paths[i]) as image:
                image.verify()
        except Exception:  # Pillow raises many types for broken files; each one means "cannot be used"
            bad.append(i)

    with ThreadPoolExecutor(max_workers=threads or min(8, (os.cpu_count() or 1) * 2)) as pool:
        list(pool.map(one, range(len(paths)), chunksize=64))
    return sorted(bad)
