"""Writes that run behind the driver: one background thread per store, in the order queued.

Tune's loop runs on the driver's one thread; every store round trip made there (an sqlite commit,
a PostgreSQL or HTTP request) holds up every trial waiting for its next epoch. Records that no
decision reads at once go through one of these; the driver waits only where an order matters
(`settle` before what must follow a key's writes) and at the end (`flush`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class WriteBehind:
    """One writer thread; writes are grouped by key (a run, a trial) so one key can be waited for."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[Hashable, list[Future[Any]]] = {}

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        done = self._pool.submit(fn, *args, **kwargs)
        self._pending.setdefault(key, []).append(done)
        return done

    def settle(self, key: Hashable) -> None:
        """Wait until `key`'s writes are done; raise the first that failed."""
        for write in self._pending.pop(key, []):
            write.result()

    def flush(self) -> None:
        for key in list(self._pending):
            self.settle(key)

    def reap(self) -> None:
        """Forget the writes that are done, raising the first that failed, without waiting: a store
        that stopped taking writes stops the sweep at the next check, not after the last trial."""
        for key, writes in list(self._pending.items()):
            for write in writes:
                if write.done():
                    write.result()
            left = [w for w in writes if not w.done()]
            if left:
                self._pending[key] = left
            else:
                del self._pending[key]

    def queued(self) -> int:
        """Writes not yet started (the queue's depth)."""
        return self._pool._work_queue.qsize() if self._pool is not None else 0

    def close(self) -> None:
        """Write what is queued and stop the thread; a later write starts a new one. Safe twice."""
        pool, self._pool = self._pool, None
        try:
            self.flush()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its searcher and callbacks into the sweep's folder: the thread and the
        # queued writes belong to this process.
        return {"name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"])  # type: ignore[misc]
