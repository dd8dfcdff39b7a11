"""Snapshot rebuilds off the stream's hot path (worker/stream/deferred_rebuilds.py).

The scheduling is driven by a fake clock (no sleeps); the end-to-end case runs the record
processor with the stream worker's handler on DynamoDB Local: the batch is checkpointed while
snapshots are still dirty, and the deferred pass then leaves every snapshot equal to the pure
computation over the fold."""

from __future__ import annotations

import dataclasses

import pytest

from tests.helpers import CREATE_T, assert_matches_fold, fresh_tables
from tests.test_record_processor import Batch, FakeCheckpointer, rec
from tests.test_snapshots import assert_snapshots_match
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.errors import InfrastructureError, InvalidInput
from worker.stream import runtime
from worker.stream.deferred_rebuilds import RETRY_DELAYS, DeferredRebuilds
from worker.stream.record_processor import BudgetRecordProcessor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Rebuild:
    def __init__(self, failing: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.failing = failing or set()

    def __call__(self, budget: str) -> None:
        self.calls.append(budget)
        if budget in self.failing:
            raise InfrastructureError(f"{budget}: throttled")


def test_a_budget_marked_many_times_is_rebuilt_once_when_its_delay_is_over() -> None:
    clock, rebuild = Clock(), Rebuild()
    deferred = DeferredRebuilds(rebuild, delay=2.0, clock=clock)
    for budget in ("a", "b", "a", "a"):
        deferred.mark(budget)
    clock.now += 1.0
    deferred.mark("c")
    assert deferred.run_due() == 0 and rebuild.calls == []  # nothing due yet
    clock.now += 1.0
    assert deferred.run_due() == 2
    assert sorted(rebuild.calls) == ["a", "b"]  # once each; c is not due
    assert deferred.pending() == ["c"]
    clock.now += 1.0
    deferred.run_due()
    assert sorted(rebuild.calls) == ["a", "b", "c"] and deferred.pending() == []


def test_a_failed_rebuild_is_tried_again_later_and_the_rest_go_on() -> None:
    clock, rebuild = Clock(), Rebuild(failing={"b"})
    deferred = DeferredRebuilds(rebuild, delay=1.0, clock=clock)
    deferred.mark("a")
    deferred.mark("b")
    clock.now += 1.0
    assert deferred.run_due() == 1
    assert deferred.pending() == ["b"] and deferred.failed == 1
    clock.now += 1.0
    deferred.run_due()
    assert rebuild.calls.count("b") == 1  # backs off: not retried after one delay
    rebuild.failing.clear()
    clock.now += RETRY_DELAYS * 1.0
    assert deferred.run_due() == 1 and deferred.pending() == []


def test_close_rebuilds_what_is_still_marked() -> None:
    rebuild = Rebuild()
    deferred = DeferredRebuilds(rebuild, delay=3600.0)  # far beyond the test
    deferred.start()
    deferred.mark("a")
    deferred.mark("b")
    deferred.close()
    assert sorted(rebuild.calls) == ["a", "b"] and deferred.pending() == []


def test_the_background_thread_rebuilds_marked_budgets() -> None:
    rebuild = Rebuild()
    deferred = DeferredRebuilds(rebuild, delay=0.0)
    deferred.start()
    deferred.mark("a")
    try:
        for _ in range(1000):  # polls the outcome; no timing is asserted
            if rebuild.calls:
                break
            deferred._thread.join(0.01)  # type: ignore[union-attr]
    finally:
        deferred.close()
    assert rebuild.calls == ["a"]


@pytest.mark.parametrize(("raw", "expected"), [("", 5.0), ("0", 0.0), ("2.5", 2.5)])
def test_snapshot_delay_setting(raw: str, expected: float) -> None:
    assert Settings.from_env({"BUDGET_SNAPSHOT_DELAY": raw}).snapshot_delay == expected


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_a_bad_snapshot_delay_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput, match="BUDGET_SNAPSHOT_DELAY"):
        Settings.from_env({"BUDGET_SNAPSHOT_DELAY": raw})


def test_the_stream_worker_checkpoints_before_the_deferred_rebuild(ddb_endpoint: str) -> None:
    settings = dataclasses.replace(fresh_tables(ddb_endpoint, "deferred"), snapshot_delay=3600.0)
    store = Store.from_settings(aws.dynamodb(settings), settings)
    budgets = [f"d-{i}" for i in range(5)]
    persister = Persister(store)
    for budget in budgets:
        persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
        persister.persist(budget, "TransactionUpdated", "t1", {"date": "2026-02-03"})
    deferred = runtime.deferred_rebuilds(settings)
    assert deferred is not None
    processor = runtime.record_processor(settings, deferred)
    checkpointer = FakeCheckpointer()
    records = [rec(b, str(100 + i)) for i, b in enumerate(budgets)]
    processor.process_records(Batch(records, checkpointer))

    assert checkpointer.taken == [records[-1].sequence_number]
    for budget in budgets:  # caught up and checkpointed; snapshots still to do
        assert_matches_fold(store, budget)
        assert store.dirty_months(budget)
    assert deferred.pending() == budgets

    assert deferred.run_due(everything=True) == len(budgets)
    for budget in budgets:
        assert_snapshots_match(store, budget)


def test_without_a_delay_the_rebuild_stays_inline(ddb_endpoint: str) -> None:
    settings = dataclasses.replace(fresh_tables(ddb_endpoint, "inline"), snapshot_delay=0.0)
    store = Store.from_settings(aws.dynamodb(settings), settings)
    Persister(store).persist("i-1", "TransactionCreated", "t1", CREATE_T)
    assert runtime.deferred_rebuilds(settings) is None
    processor: BudgetRecordProcessor = runtime.record_processor(settings)
    processor.process_records(Batch([rec("i-1", "7")], FakeCheckpointer()))
    assert_snapshots_match(store, "i-1")


def test_close_stops_rebuilding_when_its_time_is_up() -> None:
    clock = Clock()

    def slow(budget: str) -> None:
        rebuild(budget)
        clock.now += 4.0  # each rebuild takes 4 s of the fake clock

    rebuild = Rebuild()
    deferred = DeferredRebuilds(slow, delay=3600.0, clock=clock)
    for budget in ("a", "b", "c", "d"):
        deferred.mark(budget)
    deferred.close(within=10.0)
    assert rebuild.calls == ["a", "b", "c"]  # at 0, 4 and 8 s; d is left to the sweep
    assert deferred.pending() == ["d"]
