"""The one bounded pool for per-budget work: the record processor's batch, `events import` and
the sweep (`catch-up --all`) all hand it a function and a stream of budgets.

Budgets are independent (each has its own pointer and head, and every step is conditional), so
they may be handled at once; the work of one budget stays on one thread, in order. At most
`workers` run at once and at most `workers * WINDOW_PER_WORKER` are taken from the source ahead
of completion, so a listing of millions of budgets never sits in memory. A failure is returned
with its budget, never raised, so one bad budget cannot hide the others' results.
Threads share one boto3 client per process (clients are thread-safe; sessions and resources
are not, so nothing here creates them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Items in flight per worker thread: enough to keep every thread busy, few enough that a long
# listing never sits in memory.
WINDOW_PER_WORKER = 4


@dataclass(frozen=True, slots=True)
class Done(Generic[T, R]):
    """One item's outcome: its value, or the exception its function raised."""

    item: T
    value: R | None = None
    error: Exception | None = None


def _call(fn: Callable[[T], R], item: T) -> Done[T, R]:
    try:
        return Done(item, value=fn(item))
    except Exception as exc:  # returned with its item: the caller decides what failure means
        return Done(item, error=exc)


def each(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[Done[T, R]]:
    """`fn` over `items` with at most `workers` at once, yielding outcomes as they complete
    (order is not kept). One worker runs in the caller's thread, in order."""
    if workers <= 1:
        for item in items:
            yield _call(fn, item)
        return
    window = workers * WINDOW_PER_WORKER
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="budget") as pool:
        running: set[Future[Done[T, R]]] = set()
        exhausted = False
        while running or not exhausted:
            while not exhausted and len(running) < window:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                else:
                    running.add(pool.submit(_call, fn, item))
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()


def ahead(fn: Callable[[T], R], items: Iterable[T], reads: int) -> Iterator[Done[T, R]]:
    """`fn` over `items` in order, with up to `reads` calls under way at once ahead of the
    consumer: for reads that feed the pool (a batch's position reads, one BatchGetItem per 50
    budgets), which run one after another in the thread that feeds it, so a replay of budgets
    that are all current, where those reads are the only calls, paid one round trip per 50
    budgets in sequence. Outcomes keep the items' order; at most `reads` items are taken from
    the source before their outcome is consumed. `reads` <= 1 calls `fn` inline, one item at a
    time, exactly as a plain loop would."""
    if reads <= 1:
        for item in items:
            yield _call(fn, item)
        return
    source = iter(items)
    with ThreadPoolExecutor(max_workers=reads, thread_name_prefix="read-ahead") as pool:
        queued: deque[Future[Done[T, R]]] = deque()
        for item in source:
            queued.append(pool.submit(_call, fn, item))
            if len(queued) >= reads:
                yield queued.popleft().result()
        while queued:
            yield queued.popleft().result()


def run_all(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[Done[T, R]]:
    """`fn` over every item (at most `workers` at once); outcomes in the items' order."""
    indexed = list(enumerate(items))
    outcomes = sorted(each(lambda pair: fn(pair[1]), indexed, workers), key=lambda d: d.item[0])
    return [Done(d.item[1], d.value, d.error) for d in outcomes]
