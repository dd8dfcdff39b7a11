"""The projector against DynamoDB Local: DynamoDB state equals the pure fold (I2-I4, I6)."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import CREATE_T, assert_matches_fold, intents, persisted_history
from worker.engine.persist import Persister
from worker.engine.projector import DEFAULT_BATCH, Projector
from worker.engine.reads import Store
from worker.model import layout


def dirty_markers(store: Store, budget: str) -> dict[str, str]:
    items = store.client.query(
        TableName=store.projections_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": layout.s(budget), ":p": layout.s(layout.DIRTY_PREFIX)},
        ConsistentRead=True,
    )["Items"]
    return {i["month"]["S"]: i["event_id"]["S"] for i in items}


@settings(max_examples=15)
@given(st.lists(intents, min_size=1, max_size=25))
def test_random_histories_project_to_the_fold(
    ddb_settings, steps: list[tuple[str, str, dict[str, object]]]
) -> None:
    store, budget = persisted_history(ddb_settings, steps)
    result = Projector(store).catch_up(budget)
    expected = assert_matches_fold(store, budget)
    assert result.pointer == result.head == store.head(budget)
    assert result.applied + result.rejected == len(steps)
    assert result.rejected == len(expected.rejected)


def test_catch_up_in_stages_equals_catch_up_at_once(store: Store, budget: str) -> None:
    persister = Persister(store)
    projector = Projector(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    projector.catch_up(budget)
    assert_matches_fold(store, budget)
    persister.persist(budget, "TransactionUpdated", "t1", {"date": "2026-03-02"})
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)  # poison: exists
    persister.persist(budget, "TransactionDeleted", "t9", {})  # poison: missing
    result = projector.catch_up(budget)
    assert (result.applied, result.rejected) == (1, 2)
    expected = assert_matches_fold(store, budget)
    assert sorted(expected.rejected.values()) == [
        "transaction t1 already exists",
        "transaction t9 does not exist",
    ]
    again = projector.catch_up(budget)
    assert (again.applied, again.rejected) == (0, 0)


def test_every_step_dirties_old_and_new_month(store: Store, budget: str) -> None:
    persister = Persister(store)
    a = persister.persist(budget, "TransactionCreated", "t1", CREATE_T)  # 2026-01
    Projector(store).catch_up(budget)
    assert dirty_markers(store, budget) == {"2026-01": a.event_id}
    b = persister.persist(budget, "TransactionUpdated", "t1", {"date": "2026-02-10"})
    Projector(store).catch_up(budget)
    assert dirty_markers(store, budget) == {"2026-01": b.event_id, "2026-02": b.event_id}
    c = persister.persist(budget, "TransactionDeleted", "t1", {})
    persister.persist(budget, "TransactionDeleted", "t1", {})  # rejected: dirties nothing
    Projector(store).catch_up(budget)
    assert dirty_markers(store, budget) == {"2026-01": b.event_id, "2026-02": c.event_id}


def test_item_ahead_of_pointer_is_never_overwritten(store: Store, budget: str) -> None:
    """I3 as the last line of defence: if a transaction item somehow already carries a later
    event than the one being applied, the step does not overwrite it and the budget does not
    block (the event is rejected with a reason, I6)."""
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    Projector(store).catch_up(budget)
    update = persister.persist(budget, "TransactionUpdated", "t1", {"amount": 1})
    ahead = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
    store.client.update_item(
        TableName=store.projections_table,
        Key=layout.key(budget, layout.txn_sk("t1")),
        UpdateExpression="SET last_event_id = :e",
        ExpressionAttributeValues={":e": layout.s(ahead)},
    )
    result = Projector(store).catch_up(budget)
    assert (result.applied, result.rejected, result.pointer) == (0, 1, update.event_id)
    [txn] = store.transactions(budget)
    assert (txn.amount, txn.last_event_id) == (CREATE_T["amount"], ahead)
    assert store.rejected(budget) == [
        (update.event_id, "transaction t1 already reflects a later event")
    ]


@pytest.mark.parametrize(
    ("events", "batches"), [(40, (DEFAULT_BATCH,) * 4), (60, (1, 3, 7, 25))], ids=["same", "mixed"]
)
def test_racing_projectors_apply_each_event_exactly_once(
    store: Store, budget: str, events: int, batches: tuple[int, ...]
) -> None:
    """Racing projectors, with the same or different batch sizes: exactly one wins each step,
    every event is applied once, and the budget converges to the fold."""
    persister = Persister(store)
    for n in range(events):
        kind = ["TransactionCreated", "TransactionUpdated", "TransactionDeleted"][n % 3]
        data = (
            CREATE_T
            if kind == "TransactionCreated"
            else ({} if kind.endswith("Deleted") else {"amount": n})
        )
        persister.persist(budget, kind, f"t{n // 3}", data)
    applied: list[str] = []
    lock = threading.Lock()

    def run(batch: int) -> None:
        own = Store(store.client, store.events_table, store.projections_table)
        result = Projector(own, batch=batch).catch_up(budget)
        with lock:
            applied.extend(result.applied_ids)

    threads = [threading.Thread(target=run, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(applied) == [e.event_id for e in store.events(budget)]
    assert_matches_fold(store, budget)


def test_writers_and_projectors_concurrently_converge(store: Store, budget: str) -> None:
    """Skewed writers and several projectors at once: no event is skipped or applied twice,
    and the final state is the fold (the DESIGN race cannot drop an event)."""
    applied: list[str] = []
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()

    def writer(index: int, skew: float) -> None:
        persister = Persister(store, clock=lambda: time.time() + skew)
        for n in range(12):
            persister.persist(budget, "TransactionCreated", f"w{index}-{n}", CREATE_T)
            if n % 3 == 2:
                persister.persist(budget, "TransactionUpdated", f"w{index}-{n}", {"amount": n})

    def projector() -> None:
        p = Projector(store)
        while True:
            still_writing = writing.is_set()
            result = p.catch_up(budget)
            with lock:
                applied.extend(result.applied_ids)
            if not still_writing:
                return

    writers = [
        threading.Thread(target=writer, args=(i, s)) for i, s in enumerate([-120.0, 0.0, 90.0])
    ]
    projectors = [threading.Thread(target=projector) for _ in range(3)]
    for t in writers + projectors:
        t.start()
    for t in writers:
        t.join()
    writing.clear()
    for t in projectors:
        t.join()
    events = store.events(budget)
    assert len(events) == 48
    assert sorted(applied) == [e.event_id for e in events]
    assert store.pointer(budget) == store.head(budget)
    assert_matches_fold(store, budget)


@settings(max_examples=10)
@given(st.lists(intents, min_size=1, max_size=30), st.integers(min_value=2, max_value=40))
def test_batched_catch_up_projects_to_the_fold(
    ddb_settings, steps: list[tuple[str, str, dict[str, object]]], batch: int
) -> None:
    store, budget = persisted_history(ddb_settings, steps)
    calls: list[int] = []
    send = store.client.transact_write_items

    def counting(**kwargs: object) -> object:
        calls.append(len(kwargs["TransactItems"]))  # type: ignore[arg-type]
        return send(**kwargs)

    store.client.transact_write_items = counting  # type: ignore[method-assign]
    result = Projector(store, batch=batch).catch_up(budget)
    expected = assert_matches_fold(store, budget)
    assert result.pointer == result.head == store.head(budget)
    assert result.applied + result.rejected == len(steps)
    assert result.rejected == len(expected.rejected)
    assert len(calls) == -(-len(steps) // batch)  # one call per run, runs of `batch` events


def test_batched_step_cancelled_by_an_item_ahead_falls_back_to_single_steps(
    store: Store, budget: str
) -> None:
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    Projector(store).catch_up(budget)
    before = persister.persist(budget, "TransactionCreated", "t2", CREATE_T)
    update = persister.persist(budget, "TransactionUpdated", "t1", {"amount": 1})
    after = persister.persist(budget, "TransactionUpdated", "t2", {"amount": 7})
    ahead = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
    store.client.update_item(
        TableName=store.projections_table,
        Key=layout.key(budget, layout.txn_sk("t1")),
        UpdateExpression="SET last_event_id = :e",
        ExpressionAttributeValues={":e": layout.s(ahead)},
    )
    result = Projector(store, batch=10).catch_up(budget)
    assert (result.applied, result.rejected, result.pointer) == (2, 1, after.event_id)
    assert result.applied_ids == [before.event_id, update.event_id, after.event_id]
    t1, t2 = store.transactions(budget)
    assert (t1.amount, t1.last_event_id) == (CREATE_T["amount"], ahead)
    assert (t2.amount, t2.last_event_id) == (7, after.event_id)
    assert store.rejected(budget) == [
        (update.event_id, "transaction t1 already reflects a later event")
    ]


class _Unprocessing:
    """A client whose BatchGetItem leaves all but the first key unprocessed, once per call
    of the test's choosing: DynamoDB does that when a table's read capacity runs short."""

    def __init__(self, client: Any, times: int) -> None:
        self._client, self.times, self.calls = client, times, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.times:
            self.times -= 1
            (table, request), *_ = kwargs["RequestItems"].items()
            first, rest = request["Keys"][:1], request["Keys"][1:]
            answer = self._client.batch_get_item(RequestItems={table: {**request, "Keys": first}})
            answer["UnprocessedKeys"] = {table: {**request, "Keys": rest}} if rest else {}
            return answer
        return self._client.batch_get_item(**kwargs)


def test_transactions_are_read_in_batches_and_unprocessed_keys_asked_again(
    moto_store: Store,
) -> None:
    persister = Persister(moto_store)
    for n in range(150):
        persister.persist("many", "TransactionCreated", f"t{n:03d}", {**CREATE_T, "amount": n})
    persister.persist("many", "TransactionDeleted", "t007", {})
    Projector(moto_store, batch=100).catch_up("many")
    expected = {
        f"t{n:03d}": moto_store.transaction_state("many", f"t{n:03d}").transaction
        for n in range(150)
    }
    client = _Unprocessing(moto_store.client, times=2)
    store = dataclasses.replace(moto_store, client=client)
    found = store.live_transactions("many", [*expected, "never"])
    assert found == {**expected, "never": None}
    assert found["t007"] is None and found["t008"] is not None
    assert client.calls == 4  # 100 keys: answered 1, 1, then 98; the other 51 in one call
    assert store.pointers(["many", "never"]) == {"many": store.head("many"), "never": None}
