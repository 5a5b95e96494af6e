"""Dataset versions: which ones the runs of an MLflow experiment used (`python -m sweeps datasets`),
and what changed between two versions of an image folder (`python -m sweeps datasets diff A B`).

Library functions: they return rows and text, and raise InputError; the CLI prints.

One row per (name, digest): the digest is the BLAKE2b content digest of `sweeps/data/datasets.py`, so two
sweeps listed on one row trained on exactly the same data and split settings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.core.errors import InputError

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


def versions_used(tracking_uri: str, experiment: str) -> list[dict[str, Any]]:
    """One row per (dataset name, digest) the runs of `experiment` recorded (see `table`)."""
    from tracking import dataset_inputs, store_exists

    if not store_exists(tracking_uri):
        raise InputError(
            "tracking.uri",
            f"no MLflow store at {tracking_uri}",
            "run a sweep first, or set output_dir=<the sweep's folder> or tracking.uri=...",
        )
    return dataset_inputs(tracking_uri, experiment)


# ---------------------------------------------------------------- diff of two folder versions


def _resolve(output_dir: Path, ref: str, tracking_uri: str | None, experiment: str) -> tuple[Any, str]:
    """A sweep name or a digest (or its prefix) -> (its manifest or None, how it was named): from
    the outputs folder, else from the artifact the sweep's MLflow run holds (a sweep run elsewhere)."""
    from sweeps.data.folders import Manifest, find_manifest

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


@dataclass(frozen=True)
class VersionDiff:
    """Two folder dataset versions, as named, and what changed between them (`folders.diff`)."""

    a: str
    b: str
    change: Any

    def text(self) -> str:
        change = self.change
        lines = [
            f"Dataset {self.a} -> {self.b}: {len(change.added)} added, {len(change.removed)} removed, "
            f"{len(change.changed)} changed"
        ]
        for label, items in (("added", change.added), ("removed", change.removed), ("changed", change.changed)):
            lines += [f"  {label:<8}{item}" for item in items]
        classes = sorted(set(change.counts_a) | set(change.counts_b))
        width = max([len("class"), *map(len, classes)])
        lines.append(f"{'class'.ljust(width)}  {'A':>7}  {'B':>7}")
        lines += [f"{n.ljust(width)}  {change.counts_a.get(n, 0):>7}  {change.counts_b.get(n, 0):>7}" for n in classes]
        return "\n".join(lines)


def compare(output_dir: Path, a: str, b: str, tracking_uri: str | None = None, experiment: str = "sweeps") -> VersionDiff:
    """Files added, removed and changed, and per-class counts, between versions `a` and `b`
    (sweep names or digests); raises InputError for a version that is found nowhere."""
    from sweeps.data.folders import diff

    found = []
    for ref in (a, b):
        manifest, label = _resolve(output_dir, ref, tracking_uri, experiment)
        if manifest is None:
            known = sorted(p.stem[:12] for p in (output_dir / "datasets" / "manifests").glob("*.json"))
            raise InputError(
                "datasets diff",
                f"no folder dataset version {ref!r} in {output_dir}",
                "give a sweep name or a digest (python -m sweeps datasets lists them)"
                f"{'; known: ' + ', '.join(known) if known else ''}, or set output_dir=...",
            )
        found.append((manifest, label))
    (ma, la), (mb, lb) = found
    return VersionDiff(la, lb, diff(ma, mb))


def what_changed(output_dir: Path, old_digest: str, dataset: Any) -> str:
    """', 1 changed (train/cat/1.jpg)' for a resume's error, when the old manifest is kept."""
    from sweeps.data.folders import diff, find_manifest

    old = find_manifest(output_dir, old_digest) if dataset.manifest is not None else None
    return f": {diff(old, dataset.manifest).brief()}" if old is not None else ""
