"""Fault injection for the fault-tolerance tests: real exceptions and real process deaths.

Off unless the environment sets SWEEPS_FAULTS, e.g.
    SWEEPS_FAULTS="error@filters=16;kill_once@filters=32"
Each rule is <kind>@<param>=<value>[@<epoch>]: it fires in trials whose param has that value.
Trial kinds: error (an exception while building the model), oom (TensorFlow's ResourceExhaustedError
during fit), kill (SIGKILL of the trial's own worker at the start of epoch 2, or <epoch>, every
attempt), kill_once (the same, first attempt only; a marker file in SWEEPS_FAULTS_DIR remembers
it), stall_once (at the start of epoch 1, or <epoch>, write the marker `stalled-...` and sleep, so
a test can kill the driver while that epoch runs; first attempt only).
Driver kinds fire at a named point of the sweep's driver: driver_kill (SIGKILL of the driver
itself) and driver_error (a RuntimeError), e.g. driver_kill@ended=2 (once two trials have ended),
driver_kill@point=report, driver_error@point=summary, driver_error@suggested=2 (Tune asks
Optuna for a second trial).
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV = "SWEEPS_FAULTS"
ENV_DIR = "SWEEPS_FAULTS_DIR"
KINDS = ("error", "oom", "kill", "kill_once", "stall_once", "driver_kill", "driver_error")


def _rules() -> list[tuple[str, str, str, int | None]]:
    rules = []
    for text in filter(None, (part.strip() for part in os.environ.get(ENV, "").split(";"))):
        kind, _, condition = text.partition("@")
        condition, _, epoch = condition.partition("@")
        key, _, value = condition.partition("=")
        if kind not in KINDS or not key or (epoch and not epoch.isdigit()):
            raise ValueError(f"{ENV}: cannot read rule {text!r}; write <kind>@<param>=<value>[@<epoch>] with kind in {KINDS}")
        rules.append((kind, key, value, int(epoch) if epoch else None))
    return rules


def _firing(params: Mapping[str, Any], kinds: tuple[str, ...], epoch: int | None = None) -> str | None:
    for kind, key, value, at in _rules():
        if kind in kinds and key in params and str(params[key]) == value:
            if epoch is None or epoch == (at if at is not None else (1 if kind == "stall_once" else 2)):
                return kind
    return None


def _first_time(kind: str, params: Mapping[str, Any]) -> bool:
    """True once per trial (per params) and kind: a marker file in SWEEPS_FAULTS_DIR remembers it."""
    marker = (
        Path(os.environ.get(ENV_DIR, "/tmp"))
        / f"{kind.removesuffix('_once')}ed-{hashlib.sha1(repr(sorted(params.items())).encode()).hexdigest()[:16]}"
    )
    if marker.exists():
        return False
    marker.write_text(str(os.getpid()))
    return True


def at_driver(**facts: Any) -> None:
    """A fault of the sweep's driver at a point named by `facts` (point=report, ended=2, ...)."""
    kind = _firing(facts, ("driver_kill", "driver_error"))
    if kind == "driver_kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "driver_error":
        raise RuntimeError(f"injected fault: the driver failed at {facts}")


def at_build(params: Mapping[str, Any]) -> None:
    if _firing(params, ("error",)):
        raise RuntimeError("injected fault: model building failed")


def at_epoch(params: Mapping[str, Any], epoch: int) -> None:
    if _firing(params, ("oom",)):
        import tensorflow as tf

        raise tf.errors.ResourceExhaustedError(None, None, "injected fault: OOM when allocating tensor")
    kind = _firing(params, ("kill", "kill_once", "stall_once"), epoch)
    if kind == "kill" or (kind == "kill_once" and _first_time(kind, params)):
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "stall_once" and _first_time(kind, params):
        import time

        time.sleep(600)
