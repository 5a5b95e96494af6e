"""Real image folders for the tests, built from what scikit-learn ships (no network).

`photo_folder`: random crops of the two sample photos as JPEG, one class each ("china" and a
unicode-named "花"), mixed sizes, nested subfolders; `digit_folder`: the 1,797 digits as PNG under
ten class folders, some saved as RGB (a grayscale/RGB mix). `corrupt` / `text` add a broken image
and a non-image file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PHOTO_CLASSES = ("china", "花")


def photo_folder(root: Path, per_class: int = 40, seed: int = 0, test_per_class: int = 0) -> Path:
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images  # china.jpg, flower.jpg: 427 x 640 x 3

    def fill(split_root: Path, count: int) -> None:
        for name, photo in zip(PHOTO_CLASSES, photos):
            for i in range(count):
                side = int(rng.integers(24, 72))  # mixed sizes, resized by the loader
                y, x = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
                crop = photo[y : y + side, x : x + side]
                folder = split_root / name / ("nested" if i % 3 == 0 else "")  # some one level deeper
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop).save(folder / f"{name}-{i:03d}.jpg", quality=90)

    if test_per_class:
        fill(root / "train", per_class)
        fill(root / "test", test_per_class)
    else:
        fill(root, per_class)
    return root


def digit_folder(root: Path, limit: int | None = None, test_every: int = 0) -> Path:
    """Digits as 8x8 PNG under 0..9; every 7th as RGB. test_every=k: every k-th image goes to root/test."""
    from sweeps.data.datasets import _digits_arrays

    images, target = _digits_arrays()
    images = (images * 255 / 16).round().astype(np.uint8)
    n = len(images) if limit is None else limit
    for i in range(n):
        split = ("test" if test_every and i % test_every == 0 else "train") if test_every else ""
        folder = root / split / str(int(target[i]))
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(images[i], mode="L")
        if i % 7 == 0:
            image = image.convert("RGB")
        image.save(folder / f"d{i:04d}.png")
    return root


def corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" + bytes(range(256)))
    return path


def text(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("notes about these images\n")
    return path
