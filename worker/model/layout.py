"""Where things live in DynamoDB: keys, item shapes, and conversion to and from domain types.

Pure functions over low-level attribute-value dicts, so that the persist path, the projector,
the readers and the tests agree on one layout (see docs/DESIGN.md, "Tables").
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from worker.model.events import Event, EventType, canonical_json
from worker.model.fold import Transaction

Item = dict[str, Any]

PK = "pk"
SK = "sk"
EVENT_PREFIX = "EVENT#"
HEAD_SK = "HEAD"
POINTER_SK = "POINTER"
TXN_PREFIX = "TXN#"
DIRTY_PREFIX = "DIRTY#"
SNAP_PREFIX = "SNAP#"
REJECTED_PREFIX = "REJECTED#"
# Local secondary index of the projections table: live transactions by date, for month queries.
BY_DATE_INDEX = "by_date"
DATE_KEY = "date_key"
LAST_EVENT_ID = "last_event_id"
# Global secondary index of the events table listing budgets. Only the head item carries
# `bucket`, so the index is sparse (one entry per budget), and the attribute never changes once
# set, so it costs one index write per budget, not one per event. Buckets spread the index's
# partitions (one value would make a hot partition at millions of budgets) and let a sweep list
# them in independent slices.
BUDGETS_INDEX = "by_bucket"
BUCKET = "bucket"
BUCKETS = 64


def bucket_of(budget: str) -> str:
    """The budget's listing bucket: a stable hash (crc32, not Python's salted `hash`)."""
    return f"{zlib.crc32(budget.encode('utf-8')) % BUCKETS:02d}"


def all_buckets() -> list[str]:
    return [f"{b:02d}" for b in range(BUCKETS)]


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def key(budget: str, sort_key: str) -> Item:
    return {PK: s(budget), SK: s(sort_key)}


def event_sk(event_id: str) -> str:
    return EVENT_PREFIX + event_id


def txn_sk(transaction_id: str) -> str:
    return TXN_PREFIX + transaction_id


def dirty_sk(month: str) -> str:
    return DIRTY_PREFIX + month


def rejected_sk(event_id: str) -> str:
    return REJECTED_PREFIX + event_id


def event_item(event: Event) -> Item:
    return {
        **key(event.budget, event_sk(event.event_id)),
        "event_id": s(event.event_id),
        "type": s(str(event.type)),
        "transaction_id": s(event.transaction_id),
        # Stored as canonical JSON so that I5's "same content" check is a string comparison
        # and numbers keep their exact integer form.
        "data": s(canonical_json(event.data)),
    }


def event_from_item(item: Item) -> Event:
    """Decode a stored event without validating its data: the projector must be able to read
    (and reject, I6) an event that some other producer wrote badly."""
    problem: str | None = None
    raw = item.get("data", {}).get("S", "{}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        data, problem = {}, "stored data is not valid JSON"
    if not isinstance(data, dict):
        data, problem = {}, "stored data is not a JSON object"
    type_raw = item.get("type", {}).get("S", "")
    try:
        kind = EventType(type_raw)
    except ValueError:
        kind, problem = EventType.UPDATED, f"unknown event type {type_raw!r}"
    transaction_id = item.get("transaction_id", {}).get("S", "")
    if not transaction_id:
        problem = "stored event has no transaction id"
    return Event(
        budget=item[PK]["S"],
        event_id=item[SK]["S"][len(EVENT_PREFIX) :],
        type=kind,
        transaction_id=transaction_id,
        data=data,
        problem=problem,
    )


def transaction_item(budget: str, txn: Transaction) -> Item:
    item: Item = {
        **key(budget, txn_sk(txn.transaction_id)),
        "transaction_id": s(txn.transaction_id),
        "date": s(txn.date),
        "amount": n(txn.amount),
        "account": s(txn.account),
        "category": s(txn.category),
        LAST_EVENT_ID: s(txn.last_event_id),
        DATE_KEY: s(f"{txn.date}#{txn.transaction_id}"),
    }
    if txn.payee is not None:
        item["payee"] = s(txn.payee)
    if txn.memo is not None:
        item["memo"] = s(txn.memo)
    return item


def tombstone_item(budget: str, transaction_id: str, event_id: str) -> Item:
    """A deleted transaction keeps its `last_event_id` so that I3's condition still guards it;
    it has no date key, so the by-date index never shows it."""
    return {
        **key(budget, txn_sk(transaction_id)),
        "transaction_id": s(transaction_id),
        "deleted": {"BOOL": True},
        LAST_EVENT_ID: s(event_id),
    }


def transaction_from_item(item: Item) -> Transaction | None:
    """The live transaction an item holds, or None for a tombstone."""
    if item.get("deleted", {}).get("BOOL"):
        return None
    return Transaction(
        transaction_id=item["transaction_id"]["S"],
        date=item["date"]["S"],
        amount=int(item["amount"]["N"]),
        account=item["account"]["S"],
        category=item["category"]["S"],
        payee=item["payee"]["S"] if "payee" in item else None,
        memo=item["memo"]["S"] if "memo" in item else None,
        last_event_id=item[LAST_EVENT_ID]["S"],
    )


def string_attr(item: Item | None, name: str) -> str | None:
    if not item or name not in item:
        return None
    return str(item[name]["S"])
