"""Image folders as datasets, on real JPEG and PNG files built from what scikit-learn ships.

Layout, labels, colour modes, sizes, test splits, every bad input (one line, exit 2, nothing
written), the manifest digest, its hash cache, `datasets diff`, and the streamed node cache
(decoded once, the same pixels as in memory).
"""

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sweeps import cli
from sweeps.data import folders
from sweeps.data.datasets import DatasetError, load_dataset
from sweeps.worker import feed
from tests.image_folders import PHOTO_CLASSES, corrupt, digit_folder, photo_folder, text


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return photo_folder(tmp_path_factory.mktemp("photos") / "photos", per_class=12)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digit_folder(tmp_path_factory.mktemp("digits") / "digits", limit=200)


def _load(path, **options):
    output_dir = options.pop("output_dir", None)
    return load_dataset("folder", str(path), options=options, output_dir=output_dir)


def test_labels_come_from_sorted_class_folders_nested_and_unicode_ones_included(photos, tmp_path):
    ds = _load(photos, image_size=[24, 32])
    assert ds.class_names == tuple(sorted(PHOTO_CLASSES)) == ("china", "花")
    assert ds.input_shape == (24, 32, 3) and ds.num_classes == 2
    assert len(ds.y_train) + len(ds.y_val) == 24  # nested/ subfolders are part of their class
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    nested = [e for e in ds.manifest.entries if "/nested/" in e.relpath]
    assert nested and all(e.relpath.split("/")[0] == e.label for e in ds.manifest.entries)
    assert ds.manifest.counts() == {"china": 12, "花": 12}


def test_non_image_files_are_ignored_and_counted(tmp_path):
    root = photo_folder(tmp_path / "p", per_class=4)
    text(root / "china" / "notes.txt")
    text(root / "README.md")
    ds = _load(root, image_size=[16, 16])
    assert ds.extra["dataset.ignored_files"] == "2"
    assert sorted(ds.manifest.ignored) == ["README.md", "china/notes.txt"]
    assert len(ds.manifest.entries) == 8


def test_grayscale_rgb_mix_is_converted_to_the_colour_mode(digits):
    from sweeps.data.datasets import _digits_arrays

    gray = _load(digits, image_size=[8, 8], color_mode="grayscale")
    rgb = _load(digits, image_size=[8, 8], color_mode="rgb")
    assert gray.input_shape == (8, 8, 1) and rgb.input_shape == (8, 8, 3)
    # every channel of an RGB-converted grayscale PNG holds the same value
    assert np.array_equal(rgb.x_train[..., 0], rgb.x_train[..., 2])
    assert np.allclose(rgb.x_train[..., :1], gray.x_train, atol=1 / 255)
    # labels from folder names "0".."9": each image's pixels are the digit saved under its label
    images, target = _digits_arrays()
    first = folders.decode_file(str(digits / str(target[7]) / "d0007.png"), (8, 8), 1)  # saved as RGB
    assert np.array_equal(first[..., 0], (images[7] * 255 / 16).round().astype(np.uint8))


def test_mixed_sizes_are_resized(photos):
    sizes = {Image.open(p).size for p in photos.rglob("*.jpg")}
    assert len(sizes) > 3
    ds = _load(photos, image_size=[20, 20])
    assert ds.x_train.shape[1:] == (20, 20, 3)


def test_test_split_from_train_and_test_subfolders_or_test_path(tmp_path):
    split = photo_folder(tmp_path / "split", per_class=6, test_per_class=3)
    ds = _load(split, image_size=[16, 16])
    assert len(ds.y_test) == 6 and len(ds.y_train) + len(ds.y_val) == 12
    assert ds.has_test and ds.x_test.shape == (6, 16, 16, 3)
    assert {e.split for e in ds.manifest.entries} == {"train", "test"}
    # the same test images given through dataset.test_path
    other = _load(split / "train", image_size=[16, 16], test_path=str(split / "test"))
    assert np.array_equal(np.sort(other.y_test), np.sort(ds.y_test))
    assert not _load(split / "train", image_size=[16, 16]).has_test


def _run(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def _bad_folders(root: Path) -> dict[str, Path]:
    made = {}
    made["missing"] = root / "nothing-here"
    (root / "a-file.jpg").write_bytes(b"x")
    made["file"] = root / "a-file.jpg"
    flat = root / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "x.png")
    made["flat"] = flat
    one = root / "one"
    (one / "cats").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(one / "cats" / "x.png")
    made["one"] = one
    empty = photo_folder(root / "empty", per_class=2)
    (empty / "dogs").mkdir()
    text(empty / "dogs" / "readme.txt")  # a class folder with no images
    made["empty"] = empty
    broken = photo_folder(root / "broken", per_class=2)
    corrupt(broken / "china" / "broken.jpg")
    made["broken"] = broken
    made["good"] = photo_folder(root / "good", per_class=2)
    return made


BAD = [
    # (folder, extra overrides, field, words in the message)
    ("missing", [], "dataset.path", "does not exist"),
    ("file", [], "dataset.path", "is a file, not a folder"),
    ("flat", [], "dataset.path", "no class subfolders"),
    ("one", [], "dataset.path", "one class folder"),
    ("empty", [], "dataset.path", "'dogs'"),
    ("broken", [], "dataset.path", "broken.jpg cannot be decoded"),
    ("good", ["dataset.image_size=[0,8]"], "dataset.image_size", "two positive integers"),
    ("good", ["dataset.image_size=[8]"], "dataset.image_size", "two positive integers"),
    ("good", ["dataset.image_size=big"], "dataset.image_size", "two positive integers"),
    ("good", ["dataset.color_mode=cmyk"], "dataset.color_mode", "rgb or grayscale"),
    ("good", ["dataset.memory_limit_mb=0"], "dataset.memory_limit_mb", "positive"),
    ("good", ["dataset.test_path=/no/such/test"], "dataset.test_path", "does not exist"),
]


@pytest.mark.parametrize("folder,extra,field,words", BAD, ids=[f"{b[0]}-{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_folder_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, folder, extra, field, words):
    made = _bad_folders(tmp_path)
    out = tmp_path / "outputs"
    code, err = _run(["run", "dataset=folder", f"dataset.path={made[folder]}", *extra, f"output_dir={out}"], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {field}: ") and words in err and "Fix:" in err, err
    assert not out.exists()


def test_no_path_given_is_bad_input(capsys, tmp_path):
    code, err = _run(["run", "dataset=folder", f"output_dir={tmp_path / 'o'}"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: dataset.path: no folder given")
    # pointed at one class's folder: said so
    root = photo_folder(tmp_path / "p", per_class=3)
    code, err = _run(["run", "dataset=folder", f"dataset.path={root / 'china'}", f"output_dir={tmp_path / 'o'}"], capsys)
    assert code == 2 and "is it one class's folder" in err and not (tmp_path / "o").exists()


def test_skip_corrupt_skips_counts_and_lists_the_files(tmp_path):
    root = photo_folder(tmp_path / "p", per_class=4)
    corrupt(root / "花" / "bad-1.jpg")
    corrupt(root / "china" / "nested" / "bad-2.png")
    with pytest.raises(DatasetError, match="bad-"):
        _load(root, image_size=[16, 16])
    ds = _load(root, image_size=[16, 16], skip_corrupt=True)
    assert ds.extra["dataset.skipped_corrupt"] == "2"
    assert ds.manifest.skipped == ("train/china/nested/bad-2.png", "train/花/bad-1.jpg")
    assert len(ds.manifest.entries) == 8 == len(ds.y_train) + len(ds.y_val)


def test_digest_is_the_manifest_and_the_cache_reads_only_changed_files(tmp_path, capsys):
    root = photo_folder(tmp_path / "p", per_class=5)
    out = tmp_path / "outputs"
    first = _load(root, image_size=[16, 16], output_dir=out)
    assert first.extra["dataset.files_hashed"] == "10"
    again = _load(root, image_size=[16, 16], output_dir=out)
    assert again.extra["dataset.files_hashed"] == "0" and again.digest == first.digest
    # the digest is over (split, path, size, content hash, label) of every file
    lines = "".join(e.line() for e in first.manifest.entries)
    assert first.digest == folders.manifest_digest(first.manifest.entries, first.class_names)
    assert all(e.hash == folders.file_hash(str(root / e.relpath)) for e in first.manifest.entries) and lines
    # one file changed: one file read again, a new digest, and diff names exactly that file
    changed = root / "china" / "china-001.jpg"
    Image.new("RGB", (30, 30), (200, 10, 10)).save(changed)
    os.utime(changed, ns=(1, 1))  # another modification time, whatever the clock's resolution
    second = _load(root, image_size=[16, 16], output_dir=out)
    assert second.extra["dataset.files_hashed"] == "1" and second.digest != first.digest
    change = folders.diff(first.manifest, second.manifest)
    assert change.changed == ("train/china/china-001.jpg",) and not change.added and not change.removed
    # a moved file (other class) is removed + added; a new one added
    (root / "花" / "china-004.jpg").write_bytes((root / "china" / "china-004.jpg").read_bytes())
    (root / "china" / "china-004.jpg").unlink()
    third = _load(root, image_size=[16, 16], output_dir=out)
    moved = folders.diff(second.manifest, third.manifest)
    assert moved.added == ("train/花/china-004.jpg",) and moved.removed == ("train/china/china-004.jpg",)
    assert moved.counts_a == {"china": 5, "花": 5} and moved.counts_b == {"china": 4, "花": 6}
    # the CLI, by digest (prefix), from the manifests kept under the outputs folder
    for ds in (first, second):
        folders.save_manifest(out, ds.manifest)
    code = cli.main(["datasets", "diff", first.digest[:10], second.digest, f"output_dir={out}"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "0 added, 0 removed, 1 changed" in printed.out and "changed train/china/china-001.jpg" in printed.out
    assert any(line.split() == ["china", "5", "5"] for line in printed.out.splitlines())
    code = cli.main(["datasets", "diff", "feedbeef", second.digest, f"output_dir={out}"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "feedbeef" in err


def test_streamed_data_decodes_each_file_once_per_node_into_the_same_pixels(digits, tmp_path):
    in_memory = _load(digits, image_size=[10, 10], color_mode="grayscale")
    streamed = _load(digits, image_size=[10, 10], color_mode="grayscale", memory_limit_mb=0.05, cache_dir=str(tmp_path / "node"))
    assert in_memory.stream is None and streamed.stream is not None
    assert streamed.digest == in_memory.digest and np.array_equal(streamed.y_train, in_memory.y_train)
    assert streamed.input_shape == (10, 10, 1) and len(streamed.x_train) == len(in_memory.x_train)
    assert streamed.x_train.strides == (0, 0, 0, 0)  # a view of one value: no pixels held in the driver
    assert set(streamed.arrays()) == {"stream"}
    spec = streamed.stream
    # several trials of one node start at once: one builds the cache, the others wait and reuse it
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(feed.ensure_cache(spec)[1])) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counts) == [0, 0, 200]
    assert json.loads((spec.folder / feed.DONE).read_text())["files_decoded"] == 200
    assert feed.ensure_cache(spec)[1] == 0
    cached = feed.cached_images(spec, "train")
    assert np.array_equal(cached.astype(np.float32) / 255, in_memory.x_train)
    # the trial's feed: tf.data batches scaled as in memory; validation in order
    trial_feed = feed.open_feed(streamed.arrays(), batch_size=32, seed=0)
    assert trial_feed.files_decoded == 0 and trial_feed.train_y is None
    x, y = next(iter(trial_feed.val))
    assert np.allclose(x.numpy(), in_memory.x_val[:32]) and np.array_equal(y.numpy(), in_memory.y_val[:32])
    seen = np.concatenate([b[1].numpy() for b in trial_feed.train_x])
    assert np.array_equal(np.sort(seen), np.sort(in_memory.y_train))
    # a refit's feed: train then validation from the same cache, each image with its own label
    refit, n = feed.train_and_validation_batches(spec, batch_size=32, seed=0)
    x_all, y_all = np.concatenate([in_memory.x_train, in_memory.x_val]), np.concatenate([in_memory.y_train, in_memory.y_val])
    pairs = sorted((img.tobytes(), int(label)) for img, label in zip(x_all, y_all, strict=True))
    fed = sorted((img.tobytes(), int(label)) for x, y in refit for img, label in zip(x.numpy(), y.numpy(), strict=True))
    assert n == len(y_all) and fed == pairs


def test_stream_decision_follows_memory_limit(digits):
    # 200 images of 32x32x3 float32 = 2.3 MB
    assert _load(digits, image_size=[32, 32], memory_limit_mb=3).stream is None
    assert _load(digits, image_size=[32, 32], memory_limit_mb=2).stream is not None


def test_array_digest_includes_the_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (40, 8, 8), dtype=np.uint8), np.arange(40) % 2
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    np.savez(tmp_path / "b.npz", x_train=x, y_train=y, x_test=x[:10], y_test=1 - y[:10])
    assert load_dataset("npz", str(tmp_path / "a.npz")).digest != load_dataset("npz", str(tmp_path / "b.npz")).digest
