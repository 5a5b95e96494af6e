"""The one-line-per-event terminal view of a running sweep (Ray's tables stay behind `verbose=true`)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Progress:
    total: int
    metric: str
    mode: str
    out: TextIO = sys.stdout
    started: float = field(default_factory=time.monotonic)
    counts: Counter[str] = field(default_factory=Counter)
    running: int = 0
    best: float | None = None
    redraws: int = 0

    def trial_started(self) -> None:
        self.running += 1

    def trial_finished(self, outcome: str, detail: str = "", value: float | None = None) -> None:
        self.running = max(0, self.running - 1)
        self.counts[outcome] += 1
        if value is not None and (self.best is None or (value > self.best if self.mode == "max" else value < self.best)):
            self.best = value
        print(self.line(outcome, detail, time.monotonic() - self.started), file=self.out, flush=True)

    def redrawn(self, reason: str) -> None:
        """An infeasible proposal, recorded and redrawn: said, not counted among the trials done."""
        self.redraws += 1
        print(f"  [redrawn, not counted: infeasible #{self.redraws}] {reason[:120]}", file=self.out, flush=True)

    def line(self, outcome: str, detail: str, elapsed: float) -> str:
        done = sum(n for k, n in self.counts.items() if k != "INFEASIBLE")
        c = self.counts
        failed = c["FAILED"] + c["INTERRUPTED"]
        best = f"best {self.metric} {self.best:.4f}" if self.best is not None else "no trial completed yet"
        left = _duration(elapsed / done * (self.total - done)) if 0 < done < self.total else "0 s"
        why = f": {detail[:120]}" if detail else ""
        return (
            f"  [{done}/{self.total} done, {self.running} running, {c['PRUNED']} stopped early, {failed} failed] "
            f"{best} | {_duration(elapsed)} elapsed, ~{left} left | last: {outcome.lower()}{why}"
        )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
