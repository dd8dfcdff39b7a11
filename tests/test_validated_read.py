"""Validated reads (I7): current as of the head, or a clear "stale" error."""

from __future__ import annotations

import pytest

from tests.helpers import CREATE_T, interleaved_store
from worker.config import Settings
from worker.engine import aws
from worker.engine.backoff import Backoff
from worker.engine.persist import Persister
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.engine.validated_read import read_transactions
from worker.errors import StaleProjection
from worker.model.fold import fold
from worker.proof.faults import Fault, FaultInjector, Rule


def test_current_read_reports_the_head(store: Store, budget: str) -> None:
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    last = persister.persist(budget, "TransactionUpdated", "t1", {"memo": "m"})
    view = read_transactions(store, budget, projector=Projector(store))
    assert view.as_of_event == last.event_id
    assert [t.memo for t in view.transactions] == ["m"]


def test_empty_budget_is_current(store: Store, budget: str) -> None:
    view = read_transactions(store, budget, projector=None)
    assert (view.as_of_event, view.transactions) == (None, [])


def test_behind_without_catch_up_is_stale(store: Store, budget: str) -> None:
    persister = Persister(store)
    first = persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    Projector(store).catch_up(budget)
    head = persister.persist(budget, "TransactionDeleted", "t1", {})
    with pytest.raises(StaleProjection) as info:
        read_transactions(store, budget, projector=None)
    assert (info.value.pointer, info.value.head) == (first.event_id, head.event_id)
    assert first.event_id in str(info.value) and head.event_id in str(info.value)


def test_catch_up_that_keeps_failing_ends_stale(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    head = Persister(store).persist(budget, "TransactionCreated", "t1", CREATE_T)
    broken = aws.dynamodb(ddb_settings)
    FaultInjector([Rule("TransactWriteItems", Fault.THROTTLE, limit=None)]).install(broken)
    projector = Projector(
        Store(broken, store.events_table, store.projections_table),
        backoff=Backoff(attempts=2, base=0.0, cap=0.0),
    )
    with pytest.raises(StaleProjection) as info:
        read_transactions(store, budget, projector=projector)
    assert (info.value.pointer, info.value.head) == (None, head.event_id)
    assert store.transactions(budget) == []


def test_a_step_during_the_query_is_never_returned_half_seen(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    persister = Persister(store)
    for n in range(3):
        persister.persist(budget, "TransactionCreated", f"t{n}", CREATE_T)
    Projector(store).catch_up(budget)

    def step_meanwhile() -> None:
        persister.persist(budget, "TransactionDeleted", "t0", {})
        Projector(store).catch_up(budget)

    reader_store, fired = interleaved_store(
        ddb_settings, store, "before-call.dynamodb.Query", step_meanwhile
    )
    view = read_transactions(reader_store, budget, projector=Projector(store))
    assert fired
    expected = fold(store.events(budget))
    assert view.as_of_event == expected.pointer == store.head(budget)
    assert {t.transaction_id for t in view.transactions} == set(expected.transactions)
