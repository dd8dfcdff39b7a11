"""The transaction builder: one projection step as one conditional `TransactWriteItems`.

Pure: given the pointer the projector read and the `Change`s the fold decided for a run of
consecutive events of one budget, return the items. Everything a step changes is in this one
call, so it commits whole or not at all:
- the pointer moves from exactly its previous value (or from absent) to the run's last event
  (I2);
- each transaction the run touches is written once, with its final state in the run (or a
  tombstone), and only if its stored `last_event_id` is absent or below the first event of the
  run that touches it (I3): an item already carrying any event of the run, or a later one,
  proves a racing step got there first;
- every month the run touched gets one dirty marker carrying the last event that touched it (I4);
- each rejected event is recorded with its reason, and the pointer still moves past it (I6).
A single-event step is the run of length one, item for item what it always was.
The pointer is always the first item, so cancellation reason 0 means "the pointer moved".

DynamoDB limits a call to 100 items, 4 MB, and one operation per item; `fit` says how long a
prefix of a run stays inside them, so the projector never sends a call DynamoDB must refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.model import layout
from worker.model.fold import Change, ChangeKind

POINTER_INDEX = 0
TRANSACTION_INDEX = 1

MAX_ITEMS = 100
MAX_BYTES = 4 * 1024 * 1024
# Headroom under the 4 MB limit for what `item_size` does not count (table names, expressions).
SIZE_MARGIN = 64 * 1024

I3_CONDITION = "attribute_not_exists(sk) OR last_event_id < :event"


def _pointer_item(
    projections_table: str, budget: str, previous_pointer: str | None, last_event: str
) -> dict[str, Any]:
    if previous_pointer is None:
        pointer_condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(sk)"}
    else:
        pointer_condition = {
            "ConditionExpression": "last_event_id = :previous",
            "ExpressionAttributeValues": {":previous": layout.s(previous_pointer)},
        }
    return {
        "Put": {
            "TableName": projections_table,
            "Item": {
                **layout.key(budget, layout.POINTER_SK),
                layout.LAST_EVENT_ID: layout.s(last_event),
            },
            **pointer_condition,
        }
    }


def _rejected_item(budget: str, change: Change) -> layout.Item:
    event_id = change.event.event_id
    return {
        **layout.key(budget, layout.rejected_sk(event_id)),
        "event_id": layout.s(event_id),
        "reason": layout.s(change.reason or "rejected"),
        "type": layout.s(str(change.event.type)),
        "transaction_id": layout.s(change.event.transaction_id),
    }


def _transaction_item(budget: str, change: Change) -> layout.Item:
    if change.after is not None:
        return layout.transaction_item(budget, change.after)
    return layout.tombstone_item(budget, change.event.transaction_id, change.event.event_id)


def _dirty_item(budget: str, month: str, event_id: str) -> layout.Item:
    return {
        **layout.key(budget, layout.dirty_sk(month)),
        "month": layout.s(month),
        "event_id": layout.s(event_id),
    }


def item_size(item: layout.Item) -> int:
    """DynamoDB's item size: attribute names plus values (UTF-8); numbers counted as strings,
    which is never less than DynamoDB's own count."""
    size = 0
    for name, value in item.items():
        size += len(name.encode("utf-8"))
        for raw in value.values():
            size += 1 if isinstance(raw, bool) else len(str(raw).encode("utf-8"))
    return size


@dataclass(slots=True)
class _Run:
    """The writes a run of changes adds up to, keyed so that each item appears once."""

    transactions: dict[str, tuple[str, layout.Item]]  # tid -> (first event touching it, item)
    rejected: list[layout.Item]
    dirty: dict[str, str]  # month -> last event touching it

    @classmethod
    def of(cls, budget: str, changes: Sequence[Change]) -> _Run:
        run = cls({}, [], {})
        for change in changes:
            run.add(budget, change)
        return run

    def add(self, budget: str, change: Change) -> None:
        event_id = change.event.event_id
        if change.kind is ChangeKind.REJECT:
            self.rejected.append(_rejected_item(budget, change))
            return
        tid = change.event.transaction_id
        first = self.transactions.get(tid, (event_id, {}))[0]
        self.transactions[tid] = (first, _transaction_item(budget, change))
        for month in change.months:
            self.dirty[month] = event_id

    def count(self) -> int:
        return 1 + len(self.transactions) + len(self.rejected) + len(self.dirty)

    def size(self, budget: str) -> int:
        pointer = len(budget) + 64
        txns = sum(item_size(item) for _, item in self.transactions.values())
        rejected = sum(item_size(item) for item in self.rejected)
        dirty = sum(len(budget) + 64 for _ in self.dirty)
        return pointer + txns + rejected + dirty


def fit(
    budget: str,
    changes: Sequence[Change],
    *,
    max_items: int = MAX_ITEMS,
    max_bytes: int = MAX_BYTES - SIZE_MARGIN,
) -> int:
    """How many leading changes one step can carry within DynamoDB's limits (at least one: a
    single event always fits, since an event's item is bounded far below 4 MB)."""
    run = _Run({}, [], {})
    for taken, change in enumerate(changes):
        run.add(budget, change)
        if taken and (run.count() > max_items or run.size(budget) > max_bytes):
            return taken
    return len(changes)


def batch_items(
    projections_table: str,
    budget: str,
    previous_pointer: str | None,
    changes: Sequence[Change],
) -> list[dict[str, Any]]:
    """The items of one step applying `changes` (consecutive events of `budget`, in order)."""
    if not changes:
        raise ValueError("a step applies at least one event")
    run = _Run.of(budget, changes)
    last = changes[-1].event.event_id
    items = [_pointer_item(projections_table, budget, previous_pointer, last)]
    for first, item in run.transactions.values():
        items.append(
            {
                "Put": {
                    "TableName": projections_table,
                    "Item": item,
                    "ConditionExpression": I3_CONDITION,
                    "ExpressionAttributeValues": {":event": layout.s(first)},
                }
            }
        )
    for item in run.rejected:
        items.append({"Put": {"TableName": projections_table, "Item": item}})
    for month, event_id in sorted(run.dirty.items()):
        items.append(
            {"Put": {"TableName": projections_table, "Item": _dirty_item(budget, month, event_id)}}
        )
    return items


def step_items(
    projections_table: str, budget: str, previous_pointer: str | None, change: Change
) -> list[dict[str, Any]]:
    """The single-event step (a run of one)."""
    return batch_items(projections_table, budget, previous_pointer, [change])
