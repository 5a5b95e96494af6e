"""python -m benchmarks.datasets [--files 10000] [--stream-images 3000] [--out benchmarks/results]

Two side-by-side figures for image folders (not tests: the machine and its neighbours set them):

1. Manifest digest throughput on a folder of many small image files against `b2sum` over the same
   files (both on a warm page cache): the first pass (no hash cache: every file read and hashed,
   plus the walk, the stats and the manifest) and the second pass on the unchanged folder (the
   cache answers; no content read). Targets: first pass >= 0.8x b2sum's throughput; second < 1 s.
2. Epoch time of the same model on the same folder, streamed (tf.data over the node's decoded
   cache) against in memory (arrays). Target: streamed <= 1.3x.

Writes datasets.txt and datasets.json under --out, dated with the commit and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip() or "unknown"


def _machine() -> str:
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"{platform.node()}, {os.cpu_count()} CPUs {cpu}".strip()


def small_image_folder(root: Path, n: int) -> Path:
    """n distinct small PNGs (the digits, 16x16, a per-file mark) under ten class folders."""
    from PIL import Image

    from sweeps.data.datasets import _digits_arrays

    images, target = _digits_arrays()
    base = (images * 255 / 16).astype(np.uint8)
    for i in range(n):
        k = i % len(base)
        pixels = np.kron(base[k], np.ones((2, 2), np.uint8))
        pixels[0, :2] = (i % 256, (i // 256) % 256)  # every file differs
        folder = root / str(int(target[k])) / f"part{i // 2000}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(folder / f"img{i:05d}.png")
    return root


def _b2sum(root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(f"find {root} -type f -print0 | xargs -0 b2sum > /dev/null", shell=True, check=True)
    return time.perf_counter() - started


def digest_figures(n: int, repeats: int = 3) -> dict[str, float]:
    from sweeps.data import folders

    with tempfile.TemporaryDirectory(prefix="bench-digest-") as tmp:
        root = small_image_folder(Path(tmp) / "images", n)
        total_mb = sum(f.stat().st_size for f in root.rglob("*.png")) / 2**20
        _b2sum(root)  # warm the page cache for both
        b2, first, second = [], [], []
        for r in range(repeats):
            b2.append(_b2sum(root))
            cache = Path(tmp) / f"cache{r}"
            started = time.perf_counter()
            manifest, read = folders.build_manifest(folders.scan(str(root)), cache)
            first.append(time.perf_counter() - started)
            assert read == n and len(manifest.entries) == n
            started = time.perf_counter()
            again, read = folders.build_manifest(folders.scan(str(root)), cache)
            second.append(time.perf_counter() - started)
            assert read == 0 and again.digest == manifest.digest
    b2_s, first_s, second_s = statistics.median(b2), statistics.median(first), statistics.median(second)
    return {
        "files": n,
        "megabytes": round(total_mb, 2),
        "b2sum_s": round(b2_s, 3),
        "manifest_first_s": round(first_s, 3),
        "manifest_second_s": round(second_s, 3),
        "first_vs_b2sum_throughput": round(b2_s / first_s, 2),
        "b2sum_files_per_s": round(n / b2_s),
        "manifest_first_files_per_s": round(n / first_s),
    }


def epoch_figures(n: int, size: int = 32, epochs: int = 3, batch_size: int = 64) -> dict[str, float]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from models.conv2d import build_conv2d
    from sweeps.data.datasets import load_dataset
    from sweeps.worker import feed
    from tests.image_folders import photo_folder

    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        root = photo_folder(Path(tmp) / "photos", per_class=n // 2)
        options = {"image_size": [size, size]}
        memory = load_dataset("folder", str(root), options=options)
        streamed = load_dataset(
            "folder", str(root), options={**options, "memory_limit_mb": 0.1, "cache_dir": str(Path(tmp) / "node")}
        )
        assert memory.stream is None and streamed.stream is not None
        params = {**yaml_model(), "filters": 16, "batch_size": batch_size}
        started = time.perf_counter()
        stream_feed = feed.open_feed(streamed.arrays(), batch_size, seed=0)  # builds the node's cache once
        build_s = time.perf_counter() - started

        def timed(fit) -> list[float]:
            keras.utils.set_random_seed(0)
            model = build_conv2d(params, memory.input_shape, memory.num_classes)
            fit(model, 1)  # tracing and warm-up
            times = []
            for epoch in range(2, epochs + 2):
                started = time.perf_counter()
                fit(model, epoch)
                times.append(time.perf_counter() - started)
            return times

        def in_memory(model, epoch):
            model.fit(
                memory.x_train,
                memory.y_train,
                batch_size=batch_size,
                epochs=epoch,
                initial_epoch=epoch - 1,
                validation_data=(memory.x_val, memory.y_val),
                verbose=0,
            )

        def from_stream(model, epoch):
            model.fit(
                stream_feed.train_x,
                epochs=epoch,
                initial_epoch=epoch - 1,
                validation_data=stream_feed.val,
                shuffle=False,
                verbose=0,
            )

        rounds_mem, rounds_stream = [], []
        for _ in range(2):  # interleaved, so a neighbour's load falls on both
            rounds_mem += timed(in_memory)
            rounds_stream += timed(from_stream)
    mem_s, stream_s = statistics.median(rounds_mem), statistics.median(rounds_stream)
    return {
        "images": len(memory.y_train) + len(memory.y_val),
        "image_size": size,
        "batch_size": batch_size,
        "epoch_in_memory_s": round(mem_s, 3),
        "epoch_streamed_s": round(stream_s, 3),
        "streamed_vs_in_memory": round(stream_s / mem_s, 2),
        "node_cache_build_s": round(build_s, 3),
        "files_decoded_by_build": stream_feed.files_decoded,
    }


def yaml_model() -> dict:
    import yaml

    from sweeps.space import flatten

    return flatten(yaml.safe_load((ROOT / "conf" / "model" / "conv2d.yaml").read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.datasets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=10000, help="small image files for the digest figure (default 10,000)")
    parser.add_argument("--stream-images", type=int, default=3000, help="images for the epoch-time figure (default 3,000)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if shutil.which("b2sum") is None:
        print("b2sum is not installed (coreutils)", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    digest = digest_figures(args.files)
    epoch = epoch_figures(args.stream_images)
    lines = [
        f"benchmarks datasets, {stamp}: commit {_commit()}, {_machine()}",
        "",
        f"Manifest digest of {digest['files']} small PNG files ({digest['megabytes']} MB), median of 3, warm page cache:",
        f"  b2sum (find | xargs b2sum)        {digest['b2sum_s']:>7.3f} s  {digest['b2sum_files_per_s']:>7} files/s",
        f"  manifest, first pass (no cache)   {digest['manifest_first_s']:>7.3f} s  {digest['manifest_first_files_per_s']:>7} files/s"
        f"  = {digest['first_vs_b2sum_throughput']:.2f}x b2sum's throughput (target >= 0.8x)",
        f"  manifest, second pass (unchanged) {digest['manifest_second_s']:>7.3f} s  (target < 1 s)",
        "",
        f"Epoch time, {epoch['images']} JPEG crops at {epoch['image_size']}x{epoch['image_size']}, batch {epoch['batch_size']}, median of 6 epochs:",
        f"  in memory (arrays)                {epoch['epoch_in_memory_s']:>7.3f} s",
        f"  streamed (tf.data, node cache)    {epoch['epoch_streamed_s']:>7.3f} s  = {epoch['streamed_vs_in_memory']:.2f}x (target <= 1.3x)",
        f"  node cache built once             {epoch['node_cache_build_s']:>7.3f} s  ({epoch['files_decoded_by_build']} files decoded)",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "datasets.txt").write_text(text + "\n")
    (args.out / "datasets.json").write_text(
        json.dumps({"date": stamp, "commit": _commit(), "machine": _machine(), "digest": digest, "epoch": epoch}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
