"""The race in DESIGN.md ("why a head item"), staged exactly.

Events a < b. b commits; the projector reads "next after p" = b; then a writer tries to commit a;
then the projector's step p -> b commits. With only a "ULID > pointer" check at persist time, a
is stored behind the pointer and skipped forever. With the head item, a cannot be stored under
its id: it is reassigned above b and applied by the next step.
"""

from __future__ import annotations

import time
from typing import Any

from ulid import ULID

from tests.helpers import CREATE_T, assert_matches_fold, interleaved_store
from worker.config import Settings
from worker.engine.persist import Persister, PersistStatus
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.model import layout
from worker.model.events import build_event
from worker.model.fold import fold


def staged(ddb_settings: Settings, store: Store, on_step: Any) -> Store:
    """A projector store whose first TransactWriteItems first runs `on_step` (the racing
    writer), between the projector's read of the events and its conditional step."""
    staged_store, _ = interleaved_store(
        ddb_settings, store, "before-call.dynamodb.TransactWriteItems", on_step
    )
    return staged_store


def test_late_writer_cannot_slip_behind_the_projector(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    Projector(store).catch_up(budget)
    now = time.time()
    a_id, b_id = str(ULID.from_timestamp(now - 1)), str(ULID.from_timestamp(now))
    persister.persist(budget, "TransactionUpdated", "t1", {"amount": 2}, b_id)
    late: list[Any] = []

    def writer_a() -> None:
        late.append(persister.persist(budget, "TransactionCreated", "t2", CREATE_T, a_id))

    result = Projector(staged(ddb_settings, store, writer_a)).catch_up(budget)
    [a] = late
    assert a.status is PersistStatus.REASSIGNED
    assert a.event_id > b_id
    assert result.applied_ids[:2] == [b_id, a.event_id]
    assert result.pointer == store.head(budget) == a.event_id
    expected = assert_matches_fold(store, budget)
    assert "t2" in expected.transactions


def test_without_the_head_item_the_event_would_be_skipped(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    """The counterfactual, to show the test above can fail: a naive persist that only puts the
    event (no head condition) lets a land behind the pointer, and it is never applied."""
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    Projector(store).catch_up(budget)
    now = time.time()
    a_id, b_id = str(ULID.from_timestamp(now - 1)), str(ULID.from_timestamp(now))
    persister.persist(budget, "TransactionUpdated", "t1", {"amount": 2}, b_id)

    def naive_writer_a() -> None:
        event = build_event(budget, "TransactionCreated", "t2", CREATE_T, a_id)
        store.client.put_item(
            TableName=store.events_table,
            Item=layout.event_item(event),
            ConditionExpression="attribute_not_exists(sk)",
        )

    Projector(staged(ddb_settings, store, naive_writer_a)).catch_up(budget)
    Projector(store).catch_up(budget)
    assert store.pointer(budget) == b_id
    assert a_id < b_id and store.event(budget, a_id) is not None
    full_fold = fold(store.events(budget))
    projected = {t.transaction_id for t in store.transactions(budget)}
    assert "t2" in full_fold.transactions and "t2" not in projected  # skipped forever
