"""The comparison's second, harder dataset: a real folder of JPEG photos, built offline.

scikit-learn ships two photos (china.jpg, flower.jpg, 427 x 640). Each is cut into a grid of
regions and every region is one class: a class's images are random crops (mixed sizes, some
mirrored) from inside its region, saved as JPEG under DIR/<photo>-<row>-<col>/. Telling regions of
the same photo apart takes texture and colour, not a single pixel: a small Conv2D does not reach
high accuracy in one or two epochs, so the target separates the tools (digits at 0.90 did not).
The folder is read by the product as `dataset=folder` and by the peers through the same loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PHOTOS = ("china", "flower")


def photo_regions_folder(root: Path, rows: int = 2, cols: int = 3, per_class: int = 60, seed: int = 0) -> Path:
    """rows x cols classes per photo; per_class crops of 20-56 px each. Deterministic in seed."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    for name, photo in zip(PHOTOS, photos):
        h, w = photo.shape[0] // rows, photo.shape[1] // cols
        for r in range(rows):
            for c in range(cols):
                region = photo[r * h : (r + 1) * h, c * w : (c + 1) * w]
                folder = root / f"{name}-{r}-{c}"
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(per_class):
                    side = int(rng.integers(20, 57))
                    y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
                    crop = region[y : y + side, x : x + side]
                    if rng.random() < 0.5:
                        crop = crop[:, ::-1]
                    Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"{i:03d}.jpg", quality=85)
    return root
