"""What every tool of a comparison shares: the budget, the model, the search space, the data, and
the record each run leaves (trials with timestamps), from which every figure is computed the same way.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"

# Trial states, the same words for every tool.
COMPLETE, PRUNED, FAILED, INFEASIBLE = "complete", "pruned", "failed", "infeasible"
FINISHED_STATES = (COMPLETE, PRUNED)


def model_defaults() -> dict[str, Any]:
    """The fixed architecture, conf/model/conv2d.yaml, as the product reads it."""
    return dict(yaml.safe_load((CONF / "model" / "conv2d.yaml").read_text()))


def asha_defaults() -> tuple[int, int]:
    """grace_period, reduction_factor of the product's default scheduler (conf/scheduler/asha.yaml)."""
    conf = yaml.safe_load((CONF / "scheduler" / "asha.yaml").read_text())
    return int(conf["grace_period"]), int(conf["reduction_factor"])


@dataclass(frozen=True)
class Budget:
    """The same for every tool: trials, epochs per trial at most, trials at once, data."""

    n_trials: int = 12
    max_epochs: int = 5
    slots: int = 2
    limit: int | None = None  # keep only the first N images of digits (None: all 1,797)
    seed: int = 0
    val_fraction: float = 0.2
    grace_period: int = 2  # early stopping where a tool has it: ASHA-like rungs at 2, 6, ...
    reduction_factor: int = 3
    dataset: str = "digits"  # a name of sweeps.data.datasets, or "folder" (then dataset_path and dataset_options)
    dataset_path: str | None = None
    dataset_options: dict[str, Any] | None = None  # a folder's image_size, color_mode (the product's dataset.*)
    # The product's space=: the peers search small (benchmarks/peers.py), so a comparison pins it (the
    # product's default for a folder or .npz is auto); None: the product's own default (benchmarks baseline).
    space: str | None = "small"

    def __post_init__(self) -> None:
        if self.grace_period > self.max_epochs:  # the first rung cannot lie past the last epoch
            object.__setattr__(self, "grace_period", self.max_epochs)

    @classmethod
    def with_product_scheduler(cls, **kwargs: Any) -> Budget:
        grace, factor = asha_defaults()
        return cls(grace_period=grace, reduction_factor=factor, **kwargs)


def load_data(budget: Budget) -> dict[str, Any]:
    """The budget's dataset through the product's own loader, split exactly as the product splits
    it (same seed, fraction, limit; a folder resized and converted with the same options)."""
    from sweeps.data.datasets import load_dataset

    ds = load_dataset(
        budget.dataset, budget.dataset_path, budget.val_fraction, budget.limit, budget.seed, dict(budget.dataset_options or {})
    )
    return {
        "x_train": ds.x_train,
        "y_train": ds.y_train,
        "x_val": ds.x_val,
        "y_val": ds.y_val,
        "input_shape": tuple(ds.input_shape),
        "num_classes": int(ds.num_classes),
        "x_test": ds.x_test,  # the held-out test split (None without one): scored once, never trained on
        "y_test": ds.y_test,
    }


@dataclass
class Trial:
    """One trial as a tool ran it. Times are time.time() seconds."""

    id: str
    start: float  # the tool's own start of the trial (scheduled / asked / created)
    end: float  # the tool's own end of it (completed / told)
    fit_s: float  # time spent inside keras Model.fit
    epochs: int
    state: str  # COMPLETE, PRUNED, FAILED, INFEASIBLE
    curve: list[tuple[float, float]] = field(default_factory=list)  # (time, val_accuracy) per epoch
    epoch_fit_s: list[float] = field(default_factory=list)  # fit time of each epoch, where known


@dataclass
class ToolRun:
    """One tool's run: launched and ended are the harness's clock around the tool's process."""

    tool: str
    slots: int  # trials it can run at once (KerasTuner: 1, whatever the budget says)
    launched: float
    ended: float
    trials: list[Trial]
    returncode: int = 0
    early_stopping: str = ""
    fit_source: str = "timestamps around fit"
    notes: str = ""
    log: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # tool-specific measurements (e.g. a breakdown)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolRun:
        data = dict(data)
        data["trials"] = [Trial(**{**t, "curve": [tuple(p) for p in t["curve"]]}) for t in data["trials"]]
        return cls(**data)


COLUMNS = [
    "tool",
    "slots",
    "wall_s",
    "trials_finished",
    "trials_failed",
    "epochs",
    "best_val_accuracy",
    "time_to_target_s",
    "epochs_to_target",
    "slot_s_to_target",
    "overhead_median_s",
    "utilisation",
    "fit_s",
    "startup_s",
    "early_stopping",
]


def time_to_target(run: ToolRun, target: float) -> float | None:
    """Seconds from the tool's launch to the first epoch of any trial at or above target."""
    hits = [t for trial in run.trials for t, acc in trial.curve if acc >= target]
    return min(hits) - run.launched if hits else None


def epochs_to_target(run: ToolRun, target: float) -> int | None:
    """Compute to target, independent of the machine's speed and load: epochs trained by all the
    tool's trials up to and including the first epoch of any trial at or above target (epochs other
    slots finish later, or were half done at that moment, are not counted)."""
    hits = [t for trial in run.trials for t, acc in trial.curve if acc >= target]
    if not hits:
        return None
    first = min(hits)
    return sum(1 for trial in run.trials for t, _ in trial.curve if t <= first)


def slot_seconds_to_target(run: ToolRun, target: float) -> float | None:
    """Busy slot-seconds to target: the sum over trials of the time each trial held its slot (the
    tool's own start to end of the trial) before the first epoch at or above target. Start-up and
    idle slots are not counted (they are in time_to_target_s and utilisation)."""
    hits = [t for trial in run.trials for t, acc in trial.curve if acc >= target]
    if not hits:
        return None
    first = min(hits)
    return sum(max(0.0, min(t.end, first) - t.start) for t in run.trials if t.start < first)


def best_so_far(run: ToolRun) -> list[tuple[float, float]]:
    """(seconds since launch, best val_accuracy so far) at every improvement."""
    points = sorted((t - run.launched, acc) for trial in run.trials for t, acc in trial.curve)
    out: list[tuple[float, float]] = []
    for t, acc in points:
        if not out or acc > out[-1][1]:
            out.append((t, acc))
    return out


def trial_overheads(run: ToolRun) -> list[float]:
    """Trial wall time minus time inside fit, for the trials that trained at least one epoch."""
    return [max(0.0, (t.end - t.start) - t.fit_s) for t in run.trials if t.epochs > 0 and t.end >= t.start]


def metrics(run: ToolRun, target: float) -> dict[str, Any]:
    """The table's row for one run."""
    wall = run.ended - run.launched
    fit = sum(t.fit_s for t in run.trials)
    accs = [acc for t in run.trials for _, acc in t.curve]
    overheads = trial_overheads(run)
    starts = [t.start for t in run.trials]
    return {
        "tool": run.tool,
        "slots": run.slots,
        "wall_s": round(wall, 1),
        "trials_finished": sum(t.state in FINISHED_STATES for t in run.trials),
        "trials_failed": sum(t.state not in FINISHED_STATES for t in run.trials),
        "epochs": sum(t.epochs for t in run.trials),
        "best_val_accuracy": round(max(accs), 4) if accs else math.nan,
        "time_to_target_s": _round(time_to_target(run, target)),
        "epochs_to_target": math.nan if (e := epochs_to_target(run, target)) is None else e,
        "slot_s_to_target": _round(slot_seconds_to_target(run, target)),
        "overhead_median_s": round(statistics.median(overheads), 2) if overheads else math.nan,
        "utilisation": round(fit / (wall * run.slots), 3) if wall > 0 else math.nan,
        "fit_s": round(fit, 1),
        "startup_s": round(min(starts) - run.launched, 1) if starts else math.nan,
        "early_stopping": run.early_stopping,
    }


def _round(value: float | None) -> float:
    return math.nan if value is None else round(value, 1)
