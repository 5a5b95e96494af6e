"""After the trials: the champion against the baseline, and the refit (driver side, end of a sweep).

- The baseline is the sweep's trial that evaluated the configured model (user attr
  sweeps.space.BASELINE_ATTR); its best validation value and, from its kept checkpoint, its test
  score are set against the champion's (`versus`).
- refit=true: the champion's params (with any baseline values outside the space) are trained again
  on train + validation for its best epoch count (the epoch its kept checkpoint holds), in the
  driver, which has Keras loaded for the best model already (models.refit); that model is the one
  registered as @champion, test-scored once beside the champion's own checkpoint.
Optuna and plain values here; Keras and MLflow only through the objects passed in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sweeps.core.outcomes import outcome_of
from sweeps.space import BASELINE_ATTR, OUTSIDE_ATTR, outside_values

STATE_FILE = "state.json"  # beside a checkpoint's model (sweeps.core.protocol.STATE_FILE): its best epoch


def baseline_of(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    return next((t for t in trials if t.user_attrs.get(BASELINE_ATTR)), None)


def full_params(trial: FrozenTrial) -> dict[str, Any]:
    """What the trial trained with: its Optuna params and, for the baseline, the values the space cannot hold."""
    return {**trial.params, **outside_values(trial)}


def best_validation(trial: FrozenTrial, mode: str) -> float | None:
    """A trial's first objective: its value when complete, else its best reported epoch (stopped early)."""
    if trial.state == TrialState.COMPLETE and trial.values:
        return float(trial.values[0])
    if trial.intermediate_values:
        return float((max if mode == "max" else min)(trial.intermediate_values.values()))
    return None


def _detail(trial: FrozenTrial) -> str:
    outcome = outcome_of(trial).value if trial.state.is_finished() else trial.state.name
    if outcome == "INFEASIBLE":
        return str(trial.user_attrs.get("infeasible_reason", ""))
    if outcome == "PRUNED" and trial.intermediate_values:
        return f"at epoch {max(trial.intermediate_values)}"
    return ""


def best_epoch(checkpoint: str | Path | None) -> int | None:
    """The epoch whose weights a trial's kept checkpoint holds (its snapshot's state file)."""
    if not checkpoint:
        return None
    try:
        return int(json.loads((Path(checkpoint).parent / STATE_FILE).read_text())["best_epoch"]) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def versus(
    metric: str,
    mode: str,
    baseline: FrozenTrial,
    best: FrozenTrial | None,
    baseline_test: float | None,
    champion_test: float | None,
    has_test: bool,
    notes: Sequence[str] = (),
) -> Any:
    from tracking.note import Versus

    outcome = outcome_of(baseline).value if baseline.state.is_finished() else "NOT_RUN"
    outside = notes or tuple(f"{k}={v!r}" for k, v in (baseline.user_attrs.get(OUTSIDE_ATTR) or {}).items())
    return Versus(
        metric=metric,
        mode=mode,
        baseline_number=baseline.number,
        baseline_outcome=outcome,
        baseline_val=best_validation(baseline, mode) if outcome in ("COMPLETE", "PRUNED") else None,
        champion_number=best.number if best is not None else None,
        champion_val=float(best.values[0]) if best is not None else None,
        baseline_test=baseline_test,
        champion_test=champion_test,
        has_test=has_test,
        baseline_detail=_detail(baseline),
        outside=tuple(outside),
    )


def refit_champion(model_params: dict[str, Any], best: FrozenTrial, dataset: Any, seed: int) -> tuple[Any, int, int] | str:
    """The refit model, its epochs and images; or, where there is none, why (a sentence)."""
    epochs = best_epoch(best.user_attrs.get("checkpoint"))
    if epochs is None:
        return "the champion's best epoch is not known (its checkpoint is gone)"
    from models.refit import refit_conv2d, train_and_validation

    params = {**model_params, **full_params(best)}
    if dataset.stream is not None:  # batches from this node's decoded cache: the folder never in memory
        from sweeps.worker.feed import train_and_validation_batches

        x, images = train_and_validation_batches(dataset.stream, int(params["batch_size"]), seed)
        return refit_conv2d(params, x, None, epochs, seed, dataset.input_shape, dataset.num_classes), epochs, images
    x, y = train_and_validation(dataset)
    return refit_conv2d(params, x, y, epochs, seed, dataset.input_shape, dataset.num_classes), epochs, len(y)
