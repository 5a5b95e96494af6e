"""`space=auto`: a search space derived from the data, in the Hydra sweep grammar the YAML spaces use.

Pure (no heavy import): from the input's height, width and channels, the number of classes and the
number of training images, `derive_space` returns the space spec (parsed like any `conf/space/*.yaml`
by `sweeps.space.parse_space`) and, for every entry, why it was chosen. Config validation calls it
when the composed space says `auto: true` (`conf/space/auto.yaml`); entries the user gives beside
it (`space.kernel_size='choice(3)'`, `space.max_params=2000000`) win over the derived ones.

The rules (docs/spaces.md, `auto`):
- pooling 2x2 after every block, stride 1, no dilation: the depth rule below counts on it;
- blocks: from the fewest that bring the map down to 16x16 or less (a dense layer on a larger map
  holds most of the parameters and learns little) to the most that keep it at least 3x3 with
  `same` padding;
- kernel sizes 3 and 5 (the article's), and 7 from 64 pixels up; `valid` padding (the article's)
  beside `same` where it leaves a 3x3 map at the fewest blocks with the largest kernel;
- filters doubling per block, the first block's filters chosen so the last stays at most 1,024;
- dense units log-uniform up to 1,024 (from 32, or the class count rounded up to a power of two);
- dropout, L2 or none on the kernels, a log learning rate, batches of 32 to 128 (256 from 12,800
  training images: still 50 steps an epoch);
- `max_params`: the largest of 500,000 (the `conv2d` space's budget), 100 per training image, and
  1.25x the article's CNN on this input (or its nearest point of this space), so that network, the
  baseline a sweep must beat, is a point of the space wherever its depth fits the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from models.plan import InfeasibleModel, plan_conv2d
from sweeps.core.errors import InputError

# The article's CNN as model params: Conv2D(32, 5x5, stride 1, relu) -> MaxPool(2x2, stride 2) ->
# Conv2D(64, 5x5, relu) -> MaxPool(2x2) -> Flatten -> Dense(1000, relu) -> Dense(classes, softmax),
# Adam at 1e-3, batch 128, no dropout and no regularizer (conf/model/conv2d.yaml expresses all of it).
ARTICLE_CNN: dict[str, Any] = {
    "blocks": 2,
    "filters": 32,
    "filters_growth": 2,
    "kernel_size": 5,
    "strides": 1,
    "padding": "valid",
    "dilation_rate": 1,
    "activation": "relu",
    "use_bias": True,
    "kernel_regularizer": "none",
    "pooling": "max",
    "pool_size": 2,
    "dense_layers": 1,
    "dense_units": 1000,
    "dropout": 0.0,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 128,
}

AUTO = "auto"  # space=auto (conf/space/auto.yaml): `auto: true` derives the space from the data

MIN_MAP = 3  # the last feature map stays at least 3x3
FLATTEN_AT_MOST = 16  # ... and at most 16x16 at the fewest blocks
MIN_SIDE = 2 * MIN_MAP  # one block with 2x2 pooling needs this many pixels to leave 3x3
FLOOR_PARAMS = 500_000  # the conv2d space's budget
PARAMS_PER_IMAGE = 100
HEADROOM = 1.25
MAX_FILTERS = 1024
MAX_DENSE = 1024
BIG_BATCH_IMAGES = 256 * 50


@dataclass(frozen=True)
class AutoSpace:
    """A derived space: `spec` in the sweep grammar (key -> grammar or constant), `reasons` per key."""

    spec: dict[str, Any]
    reasons: dict[str, str]
    facts: str  # what it was derived from, e.g. "28x28x1 images, 10 classes, 3,200 training images"

    def given(self, entries: dict[str, Any]) -> AutoSpace:
        """The space with the user's own entries (beside `auto: true`) over the derived ones."""
        reasons = {
            key: f"given as space.{key}" + (f", over the derived {self.spec[key]}" if key in self.spec else "") for key in entries
        }
        return AutoSpace({**self.spec, **entries}, {**self.reasons, **reasons}, self.facts)

    def explain(self) -> str:
        """The lines `python -m sweeps run --cfg` prints below the config (YAML comments)."""
        lines = [f"# space=auto, derived from {self.facts} (sweeps/autospace.py):"]
        lines += [f"#   {key}: {self.spec[key]}  -- {self.reasons[key]}" for key in self.spec]
        return "\n".join(lines)


def _side_after(side: int, blocks: int, kernel: int = 3, padding: str = "same") -> int:
    """A feature map's side after `blocks` blocks of Conv2D (stride 1) and 2x2 pooling."""
    for _ in range(blocks):
        if padding == "valid":
            side -= kernel - 1
        if side < 2:
            return 0
        side //= 2
    return side


def _round_up(value: float, digits: int = 2) -> int:
    """Up to `digits` significant digits: 1,358,883 -> 1,400,000."""
    scale = 10 ** max(0, int(math.floor(math.log10(value))) - digits + 1)
    return int(math.ceil(value / scale) * scale)


def _choice(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else f"choice({', '.join(map(str, values))})"


def derive_space(height: int, width: int, channels: int, classes: int, train_images: int, field: str = "dataset") -> AutoSpace:
    """The space for (height, width, channels) images of `classes` classes, `train_images` of them.

    `field`: the setting that decides the input's shape, named by the error for one too small."""
    for name, value, low in (("height", height, 1), ("width", width, 1), ("channels", channels, 1), ("classes", classes, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(field, f"the data's {name} is {value!r}, so space=auto cannot fit a space to it", _FIX)
    side = min(height, width)
    if side < MIN_SIDE:
        raise InputError(
            field,
            f"{height}x{width} images are too small for space=auto: one Conv2D block with 2x2 pooling needs "
            f"{MIN_SIDE}x{MIN_SIDE} to leave a {MIN_MAP}x{MIN_MAP} map",
            f"give images of at least {MIN_SIDE}x{MIN_SIDE} (dataset.image_size=[{MIN_SIDE},{MIN_SIDE}] for a folder), "
            "or choose a space: space=small",
        )
    shape = f"{height}x{width}x{channels}"
    spec: dict[str, Any] = {}
    why: dict[str, str] = {}

    def put(key: str, value: Any, reason: str) -> None:
        spec[key], why[key] = value, reason

    most = max(n for n in range(1, side) if _side_after(side, n) >= MIN_MAP)
    fewest = min(most, next(n for n in range(1, most + 1) if _side_after(side, n) <= FLATTEN_AT_MOST))
    maps = ", ".join(f"{n}: {_side_after(side, n)}x{_side_after(side, n)}" for n in sorted({fewest, most}))
    put(
        "blocks",
        fewest if fewest == most else f"int(interval({fewest}, {most}))",
        f"{side}px with same padding and 2x2 pooling per block leaves (blocks: map) {maps}; from the fewest at "
        f"{FLATTEN_AT_MOST}x{FLATTEN_AT_MOST} or less before Flatten to the most that keep {MIN_MAP}x{MIN_MAP}",
    )
    put("pooling", "max", "2x2 max pooling after every block, as the article: the blocks rule counts on it")
    put("pool_size", 2, "halves the map per block")
    put("strides", 1, "the map shrinks by pooling, not strides (the blocks rule counts on it)")
    put("dilation_rate", 1, "no gaps in the kernel (the blocks rule counts on it)")
    kernels = [3, 5, 7] if side >= 64 else [3, 5]
    put(
        "kernel_size",
        _choice(kernels),
        "3x3 (the guide's advice under 128px) and 5x5 (the article's)" + (", 7x7 from 64px up" if 7 in kernels else ""),
    )
    largest = kernels[-1]
    valid_ok = _side_after(side, fewest, largest, "valid") >= MIN_MAP
    put(
        "padding",
        "choice(valid, same)" if valid_ok else "same",
        (
            f"valid (the article's) keeps {MIN_MAP}x{MIN_MAP} at {fewest} block(s) with {largest}x{largest} kernels; "
            "deeper valid nets that shrink to nothing are rejected before training"
        )
        if valid_ok
        else f"valid with {largest}x{largest} kernels would leave less than {MIN_MAP}x{MIN_MAP} at {fewest} block(s)",
    )
    firsts = [f for f in (16, 32, 64) if f * 2 ** (most - 1) <= MAX_FILTERS] or [16]
    put(
        "filters",
        _choice(firsts),
        f"filters of block 1 (the article's 32), doubled per block: at {most} block(s) the last has at most "
        f"{firsts[-1] * 2 ** (most - 1):,}",
    )
    put("filters_growth", 2, "fewer filters near the input, more deeper in: 32, 64, 128 (the guide's)")
    low_units = max(32, 2 ** math.ceil(math.log2(classes)))
    high_units = max(MAX_DENSE, 2 * low_units)
    put(
        "dense_units",
        f"tag(log, int(interval({low_units}, {high_units})))",
        f"log-uniform from {low_units}" + ("" if low_units == 32 else f" ({classes} classes)") + f" up to {high_units:,} "
        "(the article's Dense(1000) inside)",
    )
    put("dropout", "interval(0.0, 0.5)", "after the dense layer; 0 is the article's")
    put("kernel_regularizer", "choice(none, l2)", "none (the article's) or L2, the guide's cure for overfitting")
    put("kernel_regularizer_strength", "tag(log, interval(1e-5, 1e-3))", "L2 strength, the guide's 1e-4 to 1e-3 and below")
    put("learning_rate", "tag(log, interval(1e-4, 1e-2))", "log-uniform around Adam's 1e-3 (the article's)")
    batches = [32, 64, 128] + ([256] if train_images >= BIG_BATCH_IMAGES else [])
    put(
        "batch_size",
        _choice(batches),
        "32 to 128 (the article's 128)"
        + (f"; 256 too from {BIG_BATCH_IMAGES:,} training images (50+ steps an epoch)" if 256 in batches else ""),
    )
    reference = {**ARTICLE_CNN, "blocks": min(max(ARTICLE_CNN["blocks"], fewest), most)}
    if not valid_ok:
        reference["padding"] = "same"
    exact = reference["blocks"] == ARTICLE_CNN["blocks"] and reference["padding"] == ARTICLE_CNN["padding"]
    terms = {
        f"the conv2d space's {FLOOR_PARAMS:,}": FLOOR_PARAMS,
        f"{PARAMS_PER_IMAGE} per training image ({train_images:,})": PARAMS_PER_IMAGE * train_images,
    }
    try:
        article = plan_conv2d(reference, (height, width, channels), classes).params
        label = "the article's CNN" if exact else f"the article's CNN at {reference['blocks']} blocks, {reference['padding']}"
        terms[f"{HEADROOM}x {label} on {shape} ({article:,} params)"] = int(HEADROOM * article)
    except InfeasibleModel as exc:
        terms[f"(the article's CNN cannot be built on {shape}: {exc})"] = 0
    winner = max(terms, key=terms.__getitem__)
    put(
        "max_params",
        _round_up(terms[winner]),
        f"{winner}, rounded up: the largest of that, {'; '.join(t for t in terms if t != winner)}; "
        "larger nets are rejected before training",
    )
    facts = f"{shape} images, {classes} classes, {train_images:,} training images"
    return AutoSpace(spec, why, facts)


_FIX = "check the dataset settings (dataset.image_size, dataset.color_mode, the images), or choose a space: space=small"
