"""A trial's snapshots: one consistent point of a trial (model, optimizer, best-so-far record), written by
the trainable at a checkpoint, read back by a retry, a PBT clone or a resumed sweep. Keras is imported only
to load one; the rest reads the state file alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.core.protocol import MODEL_FILE, STATE_FILE


@dataclass
class Snapshot:
    """One consistent point of a trial: the model and optimizer after `epoch`, and the best epoch's
    record and weights up to then. A retried or continued trial goes on from exactly here."""

    model: Any
    epoch: int
    best: dict[str, float]
    best_epoch: int
    best_weights: list[Any]
    history: list[dict[str, float]]  # each epoch's metrics up to `epoch`, for a driver that never got them
    trial_id: str | None = None  # the Tune trial that wrote it


def read_history(folder: Path) -> list[dict[str, float]]:
    """The per-epoch metrics a snapshot holds (no Keras needed)."""
    return list(json.loads((folder / STATE_FILE).read_text()).get("history", []))


def load_snapshot(folder: Path) -> Snapshot:
    import keras

    state = json.loads((folder / STATE_FILE).read_text())
    model = keras.saving.load_model(folder / state["resume_file"])  # weights and optimizer state
    if state["resume_file"] == MODEL_FILE:
        best_weights = model.get_weights()
    else:
        best_weights = keras.saving.load_model(folder / MODEL_FILE, compile=False).get_weights()
    return Snapshot(
        model,
        int(state["epoch"]),
        dict(state["best"]),
        int(state["best_epoch"]),
        best_weights,
        list(state.get("history", [])),
        state.get("trial_id"),
    )


def complete_snapshot(folder: Path) -> bool:
    """Whether a checkpoint folder holds a whole snapshot (its state file is written last and
    names the size of every other file; a copy cut short by a kill fails this)."""
    try:
        files = json.loads((folder / STATE_FILE).read_text())["files"]
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def newest_snapshot(folders: Iterable[Path]) -> tuple[Path | None, int]:
    """The whole snapshot of the latest epoch among `folders`, and that epoch ((None, 0): none)."""
    best: tuple[Path | None, int] = (None, 0)
    for folder in folders:
        if complete_snapshot(folder):
            epoch = int(json.loads((folder / STATE_FILE).read_text())["epoch"])
            if epoch > best[1]:
                best = (folder, epoch)
    return best
