"""The transaction builder: one projection step as one conditional `TransactWriteItems`.

Pure: given the pointer the projector read and the `Change` the fold decided, return the
items. Everything a step changes is in this one call, so it commits whole or not at all:
- the pointer moves from exactly its previous value (or from absent) to the event (I2);
- the transaction item is written only if its `last_event_id` is absent or lower (I3);
- every month the change touched gets a dirty marker carrying the event id (I4);
- a rejected event is recorded with its reason, and the pointer still moves (I6).
The pointer is always the first item, so cancellation reason 0 means "the pointer moved".
"""

from __future__ import annotations

from typing import Any

from worker.model import layout
from worker.model.fold import Change, ChangeKind

POINTER_INDEX = 0
TRANSACTION_INDEX = 1


def step_items(
    projections_table: str, budget: str, previous_pointer: str | None, change: Change
) -> list[dict[str, Any]]:
    event_id = change.event.event_id
    if previous_pointer is None:
        pointer_condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(sk)"}
    else:
        pointer_condition = {
            "ConditionExpression": "last_event_id = :previous",
            "ExpressionAttributeValues": {":previous": layout.s(previous_pointer)},
        }
    items: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": projections_table,
                "Item": {
                    **layout.key(budget, layout.POINTER_SK),
                    layout.LAST_EVENT_ID: layout.s(event_id),
                },
                **pointer_condition,
            }
        }
    ]
    if change.kind is ChangeKind.REJECT:
        items.append(
            {
                "Put": {
                    "TableName": projections_table,
                    "Item": {
                        **layout.key(budget, layout.rejected_sk(event_id)),
                        "event_id": layout.s(event_id),
                        "reason": layout.s(change.reason or "rejected"),
                        "type": layout.s(str(change.event.type)),
                        "transaction_id": layout.s(change.event.transaction_id),
                    },
                }
            }
        )
        return items
    if change.after is not None:
        item = layout.transaction_item(budget, change.after)
    else:
        item = layout.tombstone_item(budget, change.event.transaction_id, event_id)
    items.append(
        {
            "Put": {
                "TableName": projections_table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(sk) OR last_event_id < :event",
                "ExpressionAttributeValues": {":event": layout.s(event_id)},
            }
        }
    )
    for month in change.months:
        items.append(
            {
                "Put": {
                    "TableName": projections_table,
                    "Item": {
                        **layout.key(budget, layout.dirty_sk(month)),
                        "month": layout.s(month),
                        "event_id": layout.s(event_id),
                    },
                }
            }
        )
    return items
