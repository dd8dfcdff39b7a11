"""Batched steps against a pure emulation of `TransactWriteItems`: for any history and any
batch size, every state a reader can observe (the state at each committed pointer) equals the
fold up to that pointer, and the final state is item for item that of single steps."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from tests.helpers import intents
from worker.model import layout
from worker.model.events import Event, EventType, check_data
from worker.model.fold import Change, Projection, Transaction, decide, fold
from worker.model.step import MAX_ITEMS, batch_items, fit, item_size, step_items

TABLE = "projections"
BUDGET = "b"

Key = tuple[str, str]


class Cancelled(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__(reasons)
        self.reasons = reasons


class FakeTable:
    """The subset of DynamoDB the step builder relies on: conditional Puts, all or nothing,
    at most 100 items and one operation per item."""

    def __init__(self) -> None:
        self.items: dict[Key, layout.Item] = {}

    def _holds(self, put: dict[str, Any]) -> bool:
        condition = put.get("ConditionExpression")
        stored = self.items.get((put["Item"]["pk"]["S"], put["Item"]["sk"]["S"]))
        values = put.get("ExpressionAttributeValues", {})
        if condition is None:
            return True
        if condition == "attribute_not_exists(sk)":
            return stored is None
        if condition == "last_event_id = :previous":
            return stored is not None and stored["last_event_id"] == values[":previous"]
        assert condition == "attribute_not_exists(sk) OR last_event_id < :event"
        return stored is None or stored["last_event_id"]["S"] < values[":event"]["S"]

    def transact(self, items: list[dict[str, Any]]) -> None:
        assert len(items) <= MAX_ITEMS
        keys = [(i["Put"]["Item"]["pk"]["S"], i["Put"]["Item"]["sk"]["S"]) for i in items]
        assert len(set(keys)) == len(keys), "one operation per item"
        reasons = ["None" if self._holds(i["Put"]) else "ConditionalCheckFailed" for i in items]
        if any(r != "None" for r in reasons):
            raise Cancelled(reasons)
        for key, item in zip(keys, items, strict=True):
            self.items[key] = item["Put"]["Item"]

    def pointer(self) -> str | None:
        item = self.items.get((BUDGET, layout.POINTER_SK))
        return None if item is None else str(item["last_event_id"]["S"])

    def transaction(self, tid: str) -> Transaction | None:
        item = self.items.get((BUDGET, layout.txn_sk(tid)))
        return None if item is None else layout.transaction_from_item(item)

    def projection(self) -> Projection:
        transactions: dict[str, Transaction] = {}
        rejected: dict[str, str] = {}
        for (_, sk), item in self.items.items():
            if sk.startswith(layout.TXN_PREFIX):
                txn = layout.transaction_from_item(item)
                if txn is not None:
                    transactions[txn.transaction_id] = txn
            elif sk.startswith(layout.REJECTED_PREFIX):
                rejected[item["event_id"]["S"]] = item["reason"]["S"]
        return Projection(transactions, rejected, self.pointer())


def as_events(steps: list[tuple[str, str, dict[str, object]]], poison: set[int]) -> list[Event]:
    events = []
    for i, (kind, tid, data) in enumerate(steps):
        event = Event(
            BUDGET,
            str(ULID.from_int(i + 1)),
            EventType(kind),
            tid,
            check_data(EventType(kind), data),
            problem="stored data is not valid JSON" if i in poison else None,
        )
        events.append(event)
    return events


def changes_for(table: FakeTable, run: list[Event]) -> list[Change]:
    """What the projector decides for a run, from the stored items (as it reads them)."""
    current: dict[str, Transaction | None] = {}
    changes = []
    for event in run:
        tid = event.transaction_id
        if tid not in current:
            current[tid] = table.transaction(tid)
        change = decide(current[tid], event)
        if change.kind.value != "reject":
            current[tid] = change.after
        changes.append(change)
    return changes


def project(events: list[Event], batch: int, **limits: int) -> tuple[FakeTable, list[int]]:
    """Catch up in steps of at most `batch` events; after every commit, the state a reader
    can observe must be the fold up to the pointer."""
    table = FakeTable()
    position, sizes = 0, []
    while position < len(events):
        changes = changes_for(table, events[position : position + batch])
        taken = fit(BUDGET, changes, **limits)
        table.transact(batch_items(TABLE, BUDGET, table.pointer(), changes[:taken]))
        position += taken
        sizes.append(taken)
        assert table.projection() == fold(events[:position])
    return table, sizes


histories = st.tuples(
    st.lists(intents, min_size=1, max_size=40), st.sets(st.integers(0, 39), max_size=5)
)


@settings(max_examples=150)
@given(histories, st.integers(min_value=1, max_value=45))
def test_any_batch_size_matches_the_fold_at_every_pointer_and_single_steps_at_the_end(
    history: tuple[list[tuple[str, str, dict[str, object]]], set[int]], batch: int
) -> None:
    events = as_events(*history)
    batched, _ = project(events, batch)
    single, sizes = project(events, 1)
    assert sizes == [1] * len(events)
    assert batched.items == single.items  # incl. dirty markers and their event ids (I4)


@settings(max_examples=50)
@given(histories, st.integers(min_value=4, max_value=12))
def test_item_limit_splits_a_run_and_never_exceeds_it(
    history: tuple[list[tuple[str, str, dict[str, object]]], set[int]], max_items: int
) -> None:
    events = as_events(*history)
    batched, sizes = project(events, 40, max_items=max_items)
    for size in sizes:
        assert 1 <= size <= 40
    single, _ = project(events, 1)
    assert batched.items == single.items


def test_item_limit_counts_pointer_transactions_rejections_and_months() -> None:
    creates = [
        (
            "TransactionCreated",
            f"t{i}",
            {"date": "2026-01-01", "amount": 1, "account": "a", "category": "c"},
        )
        for i in range(150)
    ]
    events = as_events(creates, set())  # type: ignore[arg-type]
    changes = [decide(None, e) for e in events]
    taken = fit(BUDGET, changes)
    # pointer + one transaction each + one month marker
    assert taken == MAX_ITEMS - 2
    assert len(batch_items(TABLE, BUDGET, None, changes[:taken])) == MAX_ITEMS


def test_size_limit_splits_a_run() -> None:
    """Events are capped at 16 KB of data, so 100 items stay far below 4 MB; the size limit
    is exercised here with a smaller budget of bytes."""
    memo = "m" * 10_000
    steps = [
        (
            "TransactionCreated",
            f"t{i}",
            {"date": "2026-01-01", "amount": 1, "account": "a", "category": "c", "memo": memo},
        )
        for i in range(30)
    ]
    events = as_events(steps, set())  # type: ignore[arg-type]
    changes = [decide(None, e) for e in events]
    taken = fit(BUDGET, changes, max_bytes=50_000)
    assert 1 < taken < 30
    items = batch_items(TABLE, BUDGET, None, changes[:taken])
    assert sum(item_size(i["Put"]["Item"]) for i in items) <= 50_000
    table, sizes = project(events, 30, max_bytes=50_000)
    assert sum(sizes) == 30 and len(sizes) > 1
    assert table.items == project(events, 1)[0].items


def test_an_item_already_at_an_event_of_the_run_cancels_the_whole_step() -> None:
    """I3 with a batch: the condition is against the first event of the run touching the item,
    so an item a racing step already wrote inside the run cancels the call (nothing changes)."""
    steps = [
        (
            "TransactionCreated",
            "t1",
            {"date": "2026-01-01", "amount": 1, "account": "a", "category": "c"},
        ),
        ("TransactionUpdated", "t1", {"amount": 2}),
        ("TransactionUpdated", "t1", {"amount": 3}),
    ]
    events = as_events(steps, set())  # type: ignore[arg-type]
    table = FakeTable()
    # A racing projector committed the first two events as single steps, then its pointer
    # step for the third was lost; this projector read the pointer before any of that.
    for event in events[:2]:
        [change] = changes_for(table, [event])
        table.transact(step_items(TABLE, BUDGET, table.pointer(), change))
    before = dict(table.items)
    stale = changes_for(FakeTable(), events)
    items = batch_items(TABLE, BUDGET, events[1].event_id, stale)  # pointer condition holds
    try:
        table.transact(items)
    except Cancelled as exc:
        assert exc.reasons[0] == "None"
        assert exc.reasons[1] == "ConditionalCheckFailed"
    else:
        raise AssertionError("a stale run must not overwrite a newer item")
    assert table.items == before


def test_a_step_applies_at_least_one_event() -> None:
    try:
        batch_items(TABLE, BUDGET, None, [])
    except ValueError:
        return
    raise AssertionError("empty step accepted")
