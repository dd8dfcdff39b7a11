"""Snapshot rebuilds off the stream's hot path: budgets are marked as the processor catches
them up, and one background thread rebuilds each marked budget once per `delay`.

Why: a stream batch's budgets each cost one conditional step to catch up but several reads and
writes to rebuild (markers, the months' transactions, the snapshots), so rebuilding inline made
a drain of many short backlogs about 2.8x slower (BENCHMARKS.md) and held every checkpoint
behind work the checkpoint rule does not need. Deferring is safe because the dirty markers are
the durable record of what to rebuild (I4): a budget marked here but never rebuilt (the process
died, a rebuild failed for good) keeps its markers, and the next catch-up of that budget or the
sweep (`catch-up --all`) rebuilds it. The in-memory set is only a schedule, never the truth.

Coalescing: a budget marked again before its rebuild ran is rebuilt once, so a budget written
in every batch costs one rebuild per `delay`, not one per batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from worker import logs
from worker.engine import pool

log = logs.get(__name__)

# A rebuild that failed is tried again after this many delays (its markers stay meanwhile).
RETRY_DELAYS = 5
# At exit, rebuilds still marked get this long (well inside a container's stop timeout).
CLOSE_SECONDS = 10.0


class DeferredRebuilds:
    """Budgets waiting for a snapshot rebuild, and the thread that rebuilds them, one budget
    at a time by default: projection is the promise, snapshots are best effort behind durable
    markers, so their rebuilds may take at most one connection's worth of the server (with 4
    at once, end-to-end lag p50 at 50 events/s rose from 0.12 s to 0.4 s in BENCHMARKS.md's
    runs)."""

    def __init__(
        self,
        rebuild: Callable[[str], Any],
        *,
        delay: float,
        concurrency: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rebuild = rebuild
        self.delay = delay
        self.concurrency = concurrency
        self.clock = clock
        self._due: dict[str, float] = {}  # budget -> when its rebuild may run
        self._lock = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.rebuilt = 0
        self.failed = 0

    def mark(self, budget: str) -> None:
        """Rebuild `budget` within about `delay` seconds (once, however often it is marked)."""
        with self._lock:
            if budget not in self._due:
                self._due[budget] = self.clock() + self.delay
                self._lock.notify()

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._due)

    def run_due(self, *, everything: bool = False) -> int:
        """Rebuild the budgets whose time has come (all of them with `everything`); a failure
        is logged and the budget marked again for later. Returns how many were rebuilt."""
        with self._lock:
            now = self.clock()
            budgets = [b for b, due in self._due.items() if everything or due <= now]
        return self._rebuild(budgets)

    def _rebuild(self, budgets: list[str]) -> int:
        """Unmark and rebuild `budgets`; a failure is logged and marked again for later."""
        with self._lock:
            for budget in budgets:
                del self._due[budget]
        rebuilt = 0
        for done in pool.run_all(self.rebuild, budgets, self.concurrency):
            if done.error is None:
                rebuilt += 1
                continue
            self.failed += 1
            log.warning(
                "deferred snapshot rebuild failed; markers kept, retrying later",
                budget=done.item,
                error=str(done.error),
            )
            with self._lock:
                self._due.setdefault(done.item, self.clock() + self.delay * RETRY_DELAYS)
        self.rebuilt += rebuilt
        return rebuilt

    # -- the background thread ----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="snapshot-rebuilds", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopping:
                    now = self.clock()
                    soonest = min(self._due.values(), default=None)
                    if soonest is not None and soonest <= now:
                        break
                    self._lock.wait(None if soonest is None else soonest - now)
                if self._stopping:
                    return
            try:
                self.run_due()
            except Exception:  # never let the thread die: the markers are still there
                log.exception("deferred snapshot rebuilds: unexpected error")

    def close(self, within: float = CLOSE_SECONDS) -> None:
        """Stop the thread and rebuild what is still marked, for at most `within` seconds: on
        the way out the process has nothing better to do, but a shutdown must not wait on
        hundreds of rebuilds. Whatever is left, or fails, keeps its markers for the sweep."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()
        deadline = self.clock() + within
        left = self.pending()
        if left:
            log.info("rebuilding deferred snapshots before exit", budgets=len(left))
        for done, budget in enumerate(left):
            if self.clock() >= deadline:
                log.warning(
                    "deferred snapshot rebuilds left to the sweep (markers kept)",
                    budgets=len(left) - done,
                )
                break
            self._rebuild([budget])
        log.info("deferred snapshot rebuilds stopped", rebuilt=self.rebuilt, failed=self.failed)
