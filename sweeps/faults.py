"""Fault injection for the fault-tolerance tests: real exceptions and real process deaths.

Off unless the environment sets SWEEPS_FAULTS, e.g.
    SWEEPS_FAULTS="error@filters=16;kill_once@filters=32"
Each rule is <kind>@<param>=<value>: it fires in trials whose param has that value.
Kinds: error (an exception while building the model), oom (TensorFlow's ResourceExhaustedError
during fit), kill (SIGKILL of the trial's own worker at epoch 2, every attempt), kill_once (the
same, first attempt only; a marker file in SWEEPS_FAULTS_DIR remembers it).
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
KINDS = ("error", "oom", "kill", "kill_once")


def _rules() -> list[tuple[str, str, str]]:
    rules = []
    for text in filter(None, (part.strip() for part in os.environ.get(ENV, "").split(";"))):
        kind, _, condition = text.partition("@")
        key, _, value = condition.partition("=")
        if kind not in KINDS or not key:
            raise ValueError(f"{ENV}: cannot read rule {text!r}; write <kind>@<param>=<value> with kind in {KINDS}")
        rules.append((kind, key, value))
    return rules


def _firing(params: Mapping[str, Any], kinds: tuple[str, ...]) -> str | None:
    for kind, key, value in _rules():
        if kind in kinds and key in params and str(params[key]) == value:
            return kind
    return None


def at_build(params: Mapping[str, Any]) -> None:
    if _firing(params, ("error",)):
        raise RuntimeError("injected fault: model building failed")


def at_epoch(params: Mapping[str, Any], epoch: int) -> None:
    kind = _firing(params, ("oom", "kill", "kill_once"))
    if kind == "oom":
        import tensorflow as tf

        raise tf.errors.ResourceExhaustedError(None, None, "injected fault: OOM when allocating tensor")
    if kind in ("kill", "kill_once") and epoch == 2:
        if kind == "kill_once":
            marker = Path(os.environ.get(ENV_DIR, "/tmp")) / f"killed-{hashlib.sha1(repr(sorted(params.items())).encode()).hexdigest()[:16]}"
            if marker.exists():
                return
            marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
