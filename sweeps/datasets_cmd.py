"""`python -m sweeps datasets`: which dataset versions the runs of an MLflow experiment used.

One row per (name, digest): the digest is the BLAKE2b content digest of `sweeps/datasets.py`, so two
sweeps listed on one row trained on exactly the same data and split settings.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

EXIT_BAD_INPUT = 2
COLUMNS = (("name", "NAME"), ("digest", "DIGEST"), ("source", "SOURCE"), ("shape", "SHAPE"),
           ("rows", "ROWS"), ("num_classes", "CLASSES"), ("sweeps", "SWEEPS"))


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain text table of `tracking.dataset_inputs` rows (columns padded, no wrapping)."""
    cells = [[title for _, title in COLUMNS]]
    for row in rows:
        cells.append([
            ", ".join(row[key]) if key == "sweeps" else ("" if row.get(key) is None else str(row[key]))
            for key, _ in COLUMNS
        ])
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in cells)


def main(tracking_uri: str, experiment: str, out: TextIO = sys.stdout) -> int:
    from tracking import dataset_inputs, store_exists

    if not store_exists(tracking_uri):
        print(f"error: tracking.uri: no MLflow store at {tracking_uri}. Fix: run a sweep first, or set output_dir=<the sweep's folder> "
              "or tracking.uri=...", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = dataset_inputs(tracking_uri, experiment)
    if not rows:
        print(f"No datasets recorded in experiment {experiment!r} of {tracking_uri} (run a sweep, or set tracking.experiment=...)", file=out)
        return 0
    print(f"Datasets used by the runs of experiment {experiment!r} ({tracking_uri}):", file=out)
    print(table(rows), file=out)
    return 0
