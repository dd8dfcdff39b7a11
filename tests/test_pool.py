"""The per-budget pool and its users in parallel: the record processor keeps its checkpoint
rule whatever subset of budgets fails, and `events import` keeps each budget's lines in order."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import CREATE_T, new_budget
from tests.test_record_processor import Batch, FakeCheckpointer, rec
from worker.engine import pool
from worker.engine.importer import import_events
from worker.engine.persist import Persister
from worker.engine.projector import CatchUpResult
from worker.engine.reads import Store
from worker.stream.record_processor import BudgetRecordProcessor


def test_run_all_keeps_order_and_returns_failures_with_their_item() -> None:
    def fn(n: int) -> int:
        if n % 3 == 0:
            raise ValueError(f"bad {n}")
        return n * 10

    for workers in (1, 4):
        outcomes = pool.run_all(fn, range(20), workers)
        assert [d.item for d in outcomes] == list(range(20))
        assert [d.value for d in outcomes if d.error is None] == [
            n * 10 for n in range(20) if n % 3
        ]
        assert [str(d.error) for d in outcomes if d.error is not None] == [
            f"bad {n}" for n in range(20) if n % 3 == 0
        ]


def test_workers_really_run_at_once_and_never_more_than_asked() -> None:
    # Four items meet at a barrier: they can only pass it if four run at the same time.
    barrier = threading.Barrier(4, timeout=30)
    lock = threading.Lock()
    running, most = 0, 0

    def fn(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        if n < 4:
            barrier.wait()
        with lock:
            running -= 1
        return n

    outcomes = list(pool.each(fn, range(40), 4))
    assert sorted(d.value for d in outcomes if d.value is not None) == list(range(40))
    assert all(d.error is None for d in outcomes)
    assert most == 4


class Counted:
    """The numbers 0 .. n-1, counting how many were taken: how far ahead a consumer read."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.taken = 0

    def __iter__(self) -> Iterator[int]:
        for item in range(self.n):
            self.taken += 1
            yield item


def test_each_reads_its_source_lazily() -> None:
    source = Counted(10_000)
    stream = pool.each(lambda n: n, source, 2)
    next(stream)
    assert source.taken <= 2 * pool.WINDOW_PER_WORKER + 1


def test_ahead_keeps_order_runs_reads_at_once_and_takes_no_more_than_asked() -> None:
    # Three reads meet at a barrier: they pass it only if three are under way at once.
    barrier = threading.Barrier(3, timeout=30)
    source = Counted(50)

    def read(n: int) -> int:
        if n < 3:
            barrier.wait()
        if n == 7:
            raise ValueError("unread")
        return n * 10

    stream = pool.ahead(read, source, 3)
    first = next(stream)
    assert (first.item, first.value) == (0, 0)
    assert source.taken <= 3 + 1  # the reads under way, and the one handed out
    rest = [first, *stream]
    assert [d.item for d in rest] == list(range(50))
    assert [str(d.error) for d in rest if d.error is not None] == ["unread"]
    assert all(d.value == d.item * 10 for d in rest if d.error is None)


def test_ahead_with_one_read_is_a_plain_loop_on_the_callers_thread() -> None:
    threads: list[str] = []

    def read(n: int) -> int:
        threads.append(threading.current_thread().name)
        return n

    assert [d.value for d in pool.ahead(read, range(5), 1)] == list(range(5))
    assert set(threads) == {threading.current_thread().name}


class SharedFlaky:
    """A catch-up (called from pool threads) that fails for the budgets in `failing`."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.succeeded: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, budget: str) -> CatchUpResult:
        if budget in self.failing:
            raise RuntimeError(f"{budget} unavailable")
        with self.lock:
            self.succeeded.add(budget)
        return CatchUpResult(budget, applied=1)


class SometimesQueue:
    def __init__(self) -> None:
        self.fail = False
        self.items: set[str] = set()

    def enqueue(self, budget: str, reason: str) -> None:
        if self.fail:
            raise RuntimeError("sqs down")
        self.items.add(budget)


budget_names = st.sampled_from([f"b{n}" for n in range(8)])
batches = st.lists(
    st.tuples(
        st.lists(budget_names, min_size=0, max_size=6),
        st.sets(budget_names),  # budgets whose catch-up fails during this batch
        st.booleans(),  # the retry queue fails during this batch
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(batches, st.sampled_from([2, 4, 8]), st.booleans())
def test_parallel_processor_never_checkpoints_past_an_unhandled_budget(
    script: list[tuple[list[str], set[str], bool]], concurrency: int, with_queue: bool
) -> None:
    catch_up = SharedFlaky()
    queue = SometimesQueue() if with_queue else None
    processor = BudgetRecordProcessor(catch_up, queue, concurrency=concurrency)
    owed: set[str] = set()  # delivered, and since then neither caught up nor queued
    sequence = 0
    for names, failing, queue_down in script:
        catch_up.failing, catch_up.succeeded = failing, set()
        if queue is not None:
            queue.fail, queue.items = queue_down, set()
        records = []
        for name in names:
            sequence += 1
            records.append(rec(name, str(sequence)))
        cp = FakeCheckpointer()
        processor.process_records(Batch(records, cp))
        handled = catch_up.succeeded | (queue.items if queue is not None else set())
        owed = (owed | set(names)) - handled
        assert set(processor.pending) == owed
        if records:
            assert cp.taken == ([] if owed else [records[-1].sequence_number])


def test_import_runs_budgets_at_once_and_each_budgets_lines_in_order(store: Store) -> None:
    budgets = [new_budget() for _ in range(6)]
    lines = []
    for n in range(60):
        budget = budgets[n % len(budgets)]
        lines.append(
            json.dumps(
                {
                    "budget": budget,
                    "type": "TransactionCreated",
                    "transaction_id": f"t{n}",
                    "data": {**CREATE_T, "amount": n},
                }
            )
        )
    lines.insert(7, "not json")
    report = import_events(Persister(store), lines, progress=False, workers=4)
    assert (report.imported, report.duplicate, report.reassigned) == (60, 0, 0)
    assert [f.line for f in report.failed] == [8]
    for n, budget in enumerate(budgets):
        events = store.events(budget)
        # ULID order (I1) is file order: each budget's lines were persisted one after another.
        assert [e.data["amount"] for e in events] == list(range(n, 60, len(budgets)))
