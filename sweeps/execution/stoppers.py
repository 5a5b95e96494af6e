"""Tune stoppers of a sweep: the failure limit, the goal (stop_at), and SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

from ray import tune

from sweeps.core.outcomes import Outcome
from sweeps.core.protocol import EPOCH, FAILED_ERROR, FINISHED, INFEASIBLE, reached_goal

if TYPE_CHECKING:
    from sweeps.execution.callbacks import TrackingCallback


class FailureLimit(tune.Stopper):
    """Stops the whole sweep once failed trials pass max_failures or max_failure_rate."""

    def __init__(self, callback: TrackingCallback, max_failures: int | None, max_rate: float | None, min_trials: int = 4) -> None:
        self.callback, self.max_failures, self.max_rate, self.min_trials = callback, max_failures, max_rate, min_trials
        self.reason: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        outcomes = list(self.callback.outcomes.values())
        failed = sum(o is Outcome.FAILED for o in outcomes)
        if self.max_failures is not None and failed > self.max_failures:
            self.reason = f"{failed} trials failed, more than max_failures={self.max_failures}"
        elif self.max_rate is not None and len(outcomes) >= self.min_trials and failed / len(outcomes) > self.max_rate:
            self.reason = f"{failed} of {len(outcomes)} trials failed, more than max_failure_rate={self.max_rate:g}"
        return self.reason is not None


class GoalReached(tune.Stopper):
    """Ends the sweep once a trial completes having reached `stop_at` (the trial itself stops at that
    epoch, complete): trials still running stop early (PRUNED), the rest are never started."""

    def __init__(self, callback: TrackingCallback, metric: str, mode: str, goal: float | None) -> None:
        self.callback, self.metric, self.mode, self.goal = callback, metric, mode, goal
        self.reason: str | None = None
        self.trial_id: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        if (
            self.reason is None
            and result.get(FINISHED)
            and not result.get(INFEASIBLE)
            and not result.get(FAILED_ERROR)
            and self.metric in result
            and reached_goal(float(result[self.metric]), self.goal, self.mode)
        ):
            self.trial_id = trial_id
            self.reason = (
                f"stop_at reached: trial {trial_id} has {self.metric} = {float(result[self.metric]):.4g}"
                f" at epoch {result.get(EPOCH)} ({'>=' if self.mode == 'max' else '<='} {self.goal:g})"
            )
        return False

    def stop_all(self) -> bool:
        # Not at the result itself: Tune would stop that trial too, before its completion is
        # recorded (it would end NOT_RUN). Its function returns after this report; once the
        # callback has recorded it COMPLETE, the sweep ends.
        return self.trial_id is not None and self.trial_id in self.callback.outcomes


class Interrupted(tune.Stopper):
    """Ends the sweep at Tune's next step once the driver gets SIGINT or SIGTERM; a second signal
    raises at once. A KeyboardInterrupt raised wherever the driver happens to be inside Tune's loop
    can leave a lock held (a CI run hung there until SIGKILL, its parent run never ended), so the
    loop is stopped through Tune instead and `run_sweep` raises once it has returned. Trials still
    running are left RUNNING in Optuna and MLflow, as a kill leaves them, so `resume` continues them."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"signal {signum}")
        self.signum = signum

    def installed(self) -> dict[int, Any]:
        """Handle SIGINT and SIGTERM (main thread only); returns the handlers to put back."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def __getstate__(self) -> dict[str, Any]:
        return {"signum": None}  # Tune pickles its stoppers with the experiment state
