"""`python -m sweeps datasets`: which dataset versions the runs of an MLflow experiment used;
`python -m sweeps datasets diff A B`: what changed between two versions of an image folder.

One row per (name, digest): the digest is the BLAKE2b content digest of `sweeps/datasets.py`, so two
sweeps listed on one row trained on exactly the same data and split settings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

EXIT_BAD_INPUT = 2
COLUMNS = (
    ("name", "NAME"),
    ("digest", "DIGEST"),
    ("source", "SOURCE"),
    ("shape", "SHAPE"),
    ("rows", "ROWS"),
    ("num_classes", "CLASSES"),
    ("sweeps", "SWEEPS"),
)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain text table of `tracking.dataset_inputs` rows (columns padded, no wrapping)."""
    cells = [[title for _, title in COLUMNS]]
    for row in rows:
        cells.append(
            [", ".join(row[key]) if key == "sweeps" else ("" if row.get(key) is None else str(row[key])) for key, _ in COLUMNS]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in cells)


def main(tracking_uri: str, experiment: str, out: TextIO = sys.stdout) -> int:
    from tracking import dataset_inputs, store_exists

    if not store_exists(tracking_uri):
        print(
            f"error: tracking.uri: no MLflow store at {tracking_uri}. Fix: run a sweep first, or set output_dir=<the sweep's folder> "
            "or tracking.uri=...",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    rows = dataset_inputs(tracking_uri, experiment)
    if not rows:
        print(
            f"No datasets recorded in experiment {experiment!r} of {tracking_uri} (run a sweep, or set tracking.experiment=...)",
            file=out,
        )
        return 0
    print(f"Datasets used by the runs of experiment {experiment!r} ({tracking_uri}):", file=out)
    print(table(rows), file=out)
    return 0


# ---------------------------------------------------------------- diff of two folder versions


def _resolve(output_dir: Path, ref: str, tracking_uri: str | None, experiment: str) -> tuple[Any, str]:
    """A sweep name or a digest (or its prefix) -> (its manifest or None, how it was named): from
    the outputs folder, else from the artifact the sweep's MLflow run holds (a sweep run elsewhere)."""
    from sweeps.folders import Manifest, find_manifest

    state = output_dir / "sweeps" / ref / "sweep.json"
    if state.is_file():
        digest = json.loads(state.read_text()).get("dataset_digest", "")
        found, label = find_manifest(output_dir, digest), f"{digest[:12]} (sweep {ref})"
    else:
        found, label = find_manifest(output_dir, ref), ref[:12]
    if found is None and tracking_uri:
        from tracking import sweep_manifest

        logged = sweep_manifest(tracking_uri, experiment, ref)
        if logged is not None:
            found = Manifest.from_json(logged)
            label = f"{found.digest[:12]}" + (f" (sweep {ref})" if not found.digest.startswith(ref) else "")
    return found, label


def diff_main(
    output_dir: Path, a: str, b: str, out: TextIO = sys.stdout, tracking_uri: str | None = None, experiment: str = "sweeps"
) -> int:
    """`python -m sweeps datasets diff A B`: files added, removed and changed, and per-class counts."""
    from sweeps.folders import diff

    found = []
    for ref in (a, b):
        manifest, label = _resolve(output_dir, ref, tracking_uri, experiment)
        if manifest is None:
            known = sorted(p.stem[:12] for p in (output_dir / "datasets" / "manifests").glob("*.json"))
            print(
                f"error: datasets diff: no folder dataset version {ref!r} in {output_dir}. Fix: give a sweep name or a digest "
                f"(python -m sweeps datasets lists them){'; known: ' + ', '.join(known) if known else ''}, or set output_dir=...",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        found.append((manifest, label))
    (ma, la), (mb, lb) = found
    change = diff(ma, mb)
    print(
        f"Dataset {la} -> {lb}: {len(change.added)} added, {len(change.removed)} removed, {len(change.changed)} changed", file=out
    )
    for label, items in (("added", change.added), ("removed", change.removed), ("changed", change.changed)):
        for item in items:
            print(f"  {label:<8}{item}", file=out)
    classes = sorted(set(change.counts_a) | set(change.counts_b))
    width = max([len("class"), *map(len, classes)])
    print(f"{'class'.ljust(width)}  {'A':>7}  {'B':>7}", file=out)
    for name in classes:
        print(f"{name.ljust(width)}  {change.counts_a.get(name, 0):>7}  {change.counts_b.get(name, 0):>7}", file=out)
    return 0


def what_changed(output_dir: Path, old_digest: str, dataset: Any) -> str:
    """', 1 changed (train/cat/1.jpg)' for a resume's error, when the old manifest is kept."""
    from sweeps.folders import diff, find_manifest

    old = find_manifest(output_dir, old_digest) if dataset.manifest is not None else None
    return f": {diff(old, dataset.manifest).brief()}" if old is not None else ""
