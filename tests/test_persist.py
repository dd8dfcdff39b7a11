"""The persist path against DynamoDB Local: ULID order per budget (I1), exactly once (I5)."""

from __future__ import annotations

import threading
import time

import pytest
from ulid import ULID

from worker.engine.persist import Persister, PersistStatus
from worker.engine.reads import Store
from worker.errors import EventConflict, InvalidInput

CREATE = {"date": "2026-01-31", "amount": -1250, "account": "checking", "category": "food"}


def ulid_at(seconds: float) -> str:
    return str(ULID.from_timestamp(seconds))


def test_created_then_duplicate_then_conflict(store: Store, budget: str) -> None:
    persister = Persister(store)
    event_id = ulid_at(time.time())
    first = persister.persist(budget, "TransactionCreated", "t1", CREATE, event_id)
    assert (first.status, first.event_id) == (PersistStatus.CREATED, event_id)
    again = persister.persist(budget, "TransactionCreated", "t1", dict(CREATE), event_id.lower())
    assert (again.status, again.event_id) == (PersistStatus.DUPLICATE, event_id)
    with pytest.raises(EventConflict, match="different content"):
        persister.persist(budget, "TransactionCreated", "t1", {**CREATE, "amount": 1}, event_id)
    assert [e.event_id for e in store.events(budget)] == [event_id]
    assert store.events(budget)[0].data["amount"] == -1250
    assert store.head(budget) == event_id


def test_client_id_behind_head_is_reassigned_above_it(store: Store, budget: str) -> None:
    persister = Persister(store)
    newer = persister.persist(budget, "TransactionCreated", "t1", CREATE, ulid_at(time.time()))
    old_id = ulid_at(time.time() - 3600)
    result = persister.persist(budget, "TransactionDeleted", "t1", {}, old_id)
    assert result.status is PersistStatus.REASSIGNED
    assert result.requested_event_id == old_id
    assert result.event_id > newer.event_id
    assert result.as_json()["requested_event_id"] == old_id
    assert store.head(budget) == result.event_id
    assert store.event(budget, old_id) is None


def test_retry_of_a_reassigned_intent_is_a_duplicate_not_a_second_copy(
    store: Store, budget: str
) -> None:
    """A client whose reassigned persist lost its answer retries with its original id: the
    alias written with the reassignment makes that retry a duplicate (I5)."""
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE, ulid_at(time.time()))
    old_id = ulid_at(time.time() - 60)
    first = persister.persist(budget, "TransactionDeleted", "t1", {}, old_id)
    # More events land meanwhile, then the client retries its intent.
    persister.persist(budget, "TransactionCreated", "t2", CREATE)
    retry = persister.persist(budget, "TransactionDeleted", "t1", {}, old_id)
    assert retry.status is PersistStatus.DUPLICATE
    assert retry.event_id == first.event_id
    assert retry.as_json()["requested_event_id"] == old_id
    assert len(store.events(budget)) == 3
    with pytest.raises(EventConflict):
        persister.persist(budget, "TransactionDeleted", "t2", {}, old_id)


def test_generated_ids_with_a_slow_clock_still_land_in_order(store: Store, budget: str) -> None:
    fast = Persister(store, clock=lambda: time.time() + 3600)
    slow = Persister(store, clock=lambda: time.time() - 3600)
    a = fast.persist(budget, "TransactionCreated", "t1", CREATE)
    b = slow.persist(budget, "TransactionDeleted", "t1", {})
    assert a.status is PersistStatus.CREATED
    assert b.status is PersistStatus.CREATED  # the id was ours to choose: not "reassigned"
    assert b.event_id > a.event_id
    assert [e.event_id for e in store.events(budget)] == [a.event_id, b.event_id]


def test_invalid_input_writes_nothing(store: Store, budget: str) -> None:
    persister = Persister(store)
    with pytest.raises(InvalidInput):
        persister.persist(budget, "TransactionCreated", "t1", {**CREATE, "amount": 0.5})
    with pytest.raises(InvalidInput):
        persister.persist(budget, "TransactionCreated", "t1", CREATE, "not-a-ulid")
    assert store.events(budget) == []
    assert store.head(budget) is None


def test_concurrent_skewed_writers_are_totally_ordered(store: Store, budget: str) -> None:
    """Writers with clocks minutes apart persist concurrently; every intent is stored exactly
    once and the head is the greatest id (I1)."""
    skews = [-300.0, 0.0, 240.0, -30.0]
    results: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def writer(index: int, skew: float) -> None:
        persister = Persister(
            Store(store.client, store.events_table, store.projections_table),
            clock=lambda: time.time() + skew,
        )
        for n in range(15):
            r = persister.persist(budget, "TransactionCreated", f"w{index}-{n}", CREATE)
            with lock:
                results.append((index, n, r.event_id))

    threads = [threading.Thread(target=writer, args=(i, s)) for i, s in enumerate(skews)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = store.events(budget)
    assert len(stored) == len(results) == 60
    assert {e.event_id for e in stored} == {r[2] for r in results}
    assert {e.transaction_id for e in stored} == {f"w{i}-{n}" for i, n, _ in results}
    assert store.head(budget) == max(r[2] for r in results)
    # Each writer's own intents were stored in the order it issued them.
    for index in range(len(skews)):
        mine = [r[2] for r in sorted(r for r in results if r[0] == index)]
        assert mine == sorted(mine)
