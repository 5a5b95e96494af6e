"""TensorFlow's C++ start-up lines, kept off the terminal.

TensorFlow 2.21 writes them through absl before its own logging is set up (`WARNING: All log
messages before absl::InitializeLog() ...`, `cudart_stub.cc ... Could not find cuda drivers`,
`port.cc ... oneDNN custom operations are on`), so `TF_CPP_MIN_LOG_LEVEL` no longer hides them.
They are caught at the file-descriptor level while TensorFlow is imported; every other line
written meanwhile (errors included) is passed on once the import ends. The import may run in a
background thread (sweeps.execution.callbacks.WarmDriverImport) while the driver writes its last
lines: a process must `wait_for_filtered_imports()` before it exits, or they are lost with it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# absl's info and warning lines (I0000 00:00:... 123 file.cc:45] ...) and the banners around them.
_NOISE = re.compile(
    r"^(?:[IW]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w./-]+\.cc:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:)"
)


def is_noise(line: str) -> bool:
    return bool(_NOISE.match(line))


def wanted() -> bool:
    """Quiet unless TF_CPP_MIN_LOG_LEVEL asks for TensorFlow's info lines (unset or 0: verbose)."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0")


_filtering = threading.Lock()  # held while fd 2 is caught


def wait_for_filtered_imports(timeout_s: float = 300.0) -> None:
    """Until no import holds fd 2 (its caught lines then reached the terminal), at most `timeout_s`."""
    if _filtering.acquire(timeout=timeout_s):
        _filtering.release()


@contextmanager
def tensorflow_start_up_filtered() -> Iterator[None]:
    """Run the block (an import of TensorFlow or Keras) with its native start-up lines dropped."""
    if not wanted() or "tensorflow" in sys.modules:
        yield
        return
    with _filtering:
        yield from _filtered()


def _filtered() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode(errors="replace").splitlines(keepends=True) if not is_noise(line)]
            if kept:
                os.write(2, "".join(kept).encode())
