"""Which finished trials keep their checkpoints: the best `k` of the sweep, so a 1,000-trial sweep
does not keep 1,000 models (as Determined's `save_experiment_best` and ClearML's top-k archiving).
Running trials keep theirs (Tune keeps each trial's latest): a retry resumes from it.

Pure bookkeeping, no Ray: the runner's callback tells it each finished trial and deletes what it
returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class BestCheckpoints:
    keep: int | None  # None: keep every trial's
    mode: str  # "max" or "min": how the sweep's first objective ranks trials
    kept: dict[str, float] = field(default_factory=dict)  # trial id -> value, at most `keep` of them

    def finished(self, trial_id: str, value: float | None) -> list[str]:
        """Record a finished trial (value None or NaN: it has no score, e.g. failed or infeasible) and
        return the trials whose checkpoints may go now: itself, or the one it pushed out of the best."""
        if self.keep is None:
            return []
        if value is None or math.isnan(value):
            return [trial_id]
        self.kept[trial_id] = value
        if len(self.kept) <= self.keep:
            return []
        # The worst kept trial goes; on a tie, the newcomer (the earlier trial reached that value first).
        sign = 1.0 if self.mode == "max" else -1.0
        worst = min(self.kept, key=lambda t: (sign * self.kept[t], t != trial_id))
        del self.kept[worst]
        return [worst]
