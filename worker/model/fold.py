"""The pure projection: what one event does to one transaction, and the fold of a whole log.

This module is the product's definition of "correct". The projector asks `decide` what to write
for each event; the tests fold the event log with `apply` and compare DynamoDB with the result.
No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from worker.errors import InvalidInput
from worker.model.events import Event, EventType, check_data


@dataclass(frozen=True, slots=True)
class Transaction:
    """A transaction as the fold leaves it; `last_event_id` is the event that last wrote it
    (I3)."""

    transaction_id: str
    date: str
    amount: int
    account: str
    category: str
    payee: str | None
    memo: str | None
    last_event_id: str

    @property
    def month(self) -> str:
        return self.date[:7]

    def as_json(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "date": self.date,
            "amount": self.amount,
            "account": self.account,
            "category": self.category,
            "payee": self.payee,
            "memo": self.memo,
            "last_event_id": self.last_event_id,
        }


class ChangeKind(StrEnum):
    PUT = "put"
    DELETE = "delete"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Change:
    """What applying one event does: the transaction before and after, or a rejection (I6)."""

    event: Event
    kind: ChangeKind
    before: Transaction | None
    after: Transaction | None
    reason: str | None = None

    @property
    def months(self) -> tuple[str, ...]:
        """Every month whose snapshot this change invalidates (old and new date, I4)."""
        months = {t.month for t in (self.before, self.after) if t is not None}
        return tuple(sorted(months))


def _reject(event: Event, current: Transaction | None, reason: str) -> Change:
    return Change(event, ChangeKind.REJECT, current, current, reason)


def decide(current: Transaction | None, event: Event) -> Change:
    """The effect of `event` on the live transaction `current` (None: absent or deleted)."""
    if event.problem is not None:
        return _reject(event, current, event.problem)
    try:
        data = check_data(event.type, event.data)
    except InvalidInput as exc:
        return _reject(event, current, f"invalid event data: {exc}")
    tid = event.transaction_id
    if event.type is EventType.CREATED:
        if current is not None:
            return _reject(event, current, f"transaction {tid} already exists")
        created = Transaction(
            transaction_id=tid,
            date=data["date"],
            amount=data["amount"],
            account=data["account"],
            category=data["category"],
            payee=data.get("payee"),
            memo=data.get("memo"),
            last_event_id=event.event_id,
        )
        return Change(event, ChangeKind.PUT, None, created)
    if current is None:
        return _reject(event, None, f"transaction {tid} does not exist")
    if event.type is EventType.DELETED:
        return Change(event, ChangeKind.DELETE, current, None)
    updated = replace(current, **data, last_event_id=event.event_id)
    return Change(event, ChangeKind.PUT, current, updated)


@dataclass(frozen=True, slots=True)
class Projection:
    """The whole projected state of one budget, as the fold of its events up to `pointer`."""

    transactions: Mapping[str, Transaction] = field(default_factory=dict)
    rejected: Mapping[str, str] = field(default_factory=dict)
    pointer: str | None = None


def apply(state: Projection, event: Event) -> Projection:
    change = decide(state.transactions.get(event.transaction_id), event)
    transactions = dict(state.transactions)
    rejected = dict(state.rejected)
    if change.kind is ChangeKind.REJECT:
        rejected[event.event_id] = change.reason or ""
    elif change.after is None:
        transactions.pop(event.transaction_id, None)
    else:
        transactions[event.transaction_id] = change.after
    return Projection(transactions, rejected, event.event_id)


def fold(events: Iterable[Event], state: Projection | None = None) -> Projection:
    state = state or Projection()
    for event in sorted(events, key=lambda e: e.event_id):
        state = apply(state, event)
    return state
