"""Domain events and their validation.

Validation happens before anything is written (CLI contract: bad input exits 2 and writes
nothing), so every rule the projector relies on is enforced here, once, as pure code. The
projector still defends itself (poison events are rejected, I6) because events written by other
producers, or by older versions of this code, may not have passed these checks.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ulid import ULID

from worker.errors import InvalidInput

MAX_DATA_BYTES = 16 * 1024
MAX_ID_CHARS = 128
# DynamoDB numbers hold 38 significant digits; bounding each amount at 30 digits keeps the sum
# of any realistic number of them (snapshots, balances) exact.
MAX_ABS_AMOUNT = 10**30
# A client-supplied event id may be ahead of our clock by clock skew, not by more: an id far in
# the future would become the head and force every later writer's id past it.
MAX_FUTURE_SKEW_SECONDS = 24 * 3600

TEXT_FIELDS = ("account", "category", "payee", "memo")
FIELDS = ("date", "amount", *TEXT_FIELDS)
REQUIRED_ON_CREATE = ("date", "amount", "account", "category")
OPTIONAL_FIELDS = ("payee", "memo")


class EventType(StrEnum):
    """The three kinds of event; the value is the name the app and the CLI use."""

    CREATED = "TransactionCreated"
    UPDATED = "TransactionUpdated"
    DELETED = "TransactionDeleted"


@dataclass(frozen=True, slots=True)
class Event:
    """One persisted (or about to be persisted) event.

    `data` is kept in canonical form (see `canonical_data`) so that two events can be compared
    for I5 (same ULID, same content) by plain equality.
    """

    budget: str
    event_id: str
    type: EventType
    transaction_id: str
    data: Mapping[str, Any]
    # Set when a stored event could not be decoded (written by another producer or an older
    # version); the projector rejects such an event with this reason instead of crashing (I6).
    problem: str | None = None

    def same_content(self, other: Event) -> bool:
        return (
            self.budget == other.budget
            and self.type == other.type
            and self.transaction_id == other.transaction_id
            and canonical_json(self.data) == canonical_json(other.data)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": str(self.type),
            "transaction_id": self.transaction_id,
            "data": dict(self.data),
        }


def canonical_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_event_id(raw: str, now: float | None = None) -> str:
    """Return the canonical (upper-case) form of a ULID, or raise InvalidInput. With `now`,
    refuse ids dated more than MAX_FUTURE_SKEW_SECONDS ahead of it."""
    if not isinstance(raw, str) or len(raw) != 26:
        raise InvalidInput(f"invalid event id {raw!r}: expected a 26-character ULID")
    try:
        ulid = ULID.from_str(raw.upper())
    except ValueError as exc:
        raise InvalidInput(f"invalid event id {raw!r}: {exc}") from None
    if now is not None and ulid.timestamp > now + MAX_FUTURE_SKEW_SECONDS:
        days = (ulid.timestamp - now) / 86400
        raise InvalidInput(
            f"event id {raw} is dated {days:,.0f} days ahead of this clock (at most one day "
            "of clock skew is accepted)"
        )
    return str(ulid)


def _utf8(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{name} is not valid Unicode text (lone surrogate?)") from None


def check_identifier(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{kind} must be a non-empty string")
    _utf8(kind, value)
    if len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"{kind} is longer than {MAX_ID_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or value != value.strip():
        raise InvalidInput(
            f"{kind} {value!r} must not contain control characters or surrounding spaces"
        )
    return value


def parse_event_type(raw: object) -> EventType:
    try:
        return EventType(str(raw))
    except ValueError:
        allowed = ", ".join(t.value for t in EventType)
        raise InvalidInput(f"unknown event type {raw!r}: expected one of {allowed}") from None


def _check_date(value: object) -> str:
    # fromisoformat alone also takes ISO week dates such as 2026-W03-4.
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value, re.ASCII):
        raise InvalidInput(f"date {value!r} must be a YYYY-MM-DD string")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"date {value!r} is not a valid calendar date (YYYY-MM-DD)") from None
    return value


def _check_amount(value: object) -> int:
    # bool is an int subclass; True is not an amount.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"amount {value!r} must be an integer number of minor units")
    if abs(value) >= MAX_ABS_AMOUNT:
        raise InvalidInput(f"amount {value} is out of range (|amount| < {MAX_ABS_AMOUNT})")
    return value


def _check_text(name: str, value: object, *, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    if name in REQUIRED_ON_CREATE and not value.strip():
        raise InvalidInput(f"{name} must not be empty")
    _utf8(name, value)
    return value


def check_data(event_type: EventType, data: object) -> dict[str, Any]:
    """Validate an event's data for its type and return it in canonical form."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidInput("data must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field(s) in data: {', '.join(map(str, unknown))}")
    if event_type is EventType.DELETED:
        if data:
            raise InvalidInput("TransactionDeleted carries no data")
        return {}
    if event_type is EventType.CREATED:
        missing = [f for f in REQUIRED_ON_CREATE if data.get(f) is None]
        if missing:
            raise InvalidInput(f"TransactionCreated is missing field(s): {', '.join(missing)}")
    elif not data:
        raise InvalidInput("TransactionUpdated needs at least one field to change")
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name == "date":
            out[name] = _check_date(value)
        elif name == "amount":
            out[name] = _check_amount(value)
        else:
            # payee and memo may be cleared by an update (null); required fields may not.
            out[name] = _check_text(name, value, nullable=name in OPTIONAL_FIELDS)
    if event_type is EventType.CREATED:
        out = {k: v for k, v in out.items() if v is not None}
    if len(canonical_json(out).encode()) > MAX_DATA_BYTES:
        raise InvalidInput(f"data is larger than {MAX_DATA_BYTES} bytes of JSON")
    return dict(sorted(out.items()))


def parse_data_json(raw: str | None) -> object:
    if raw is None:
        return {}
    _utf8("--data", raw)
    if len(raw.encode()) > MAX_DATA_BYTES:
        raise InvalidInput(f"--data is larger than {MAX_DATA_BYTES} bytes of JSON")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--data is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will parse
        raise InvalidInput(f"--data is not acceptable JSON: {exc}") from None


def build_event(
    budget: object,
    event_type: object,
    transaction_id: object,
    data: object,
    event_id: str,
) -> Event:
    """Validate every part of an intent and return the event, or raise InvalidInput."""
    kind = parse_event_type(event_type)
    return Event(
        budget=check_identifier("budget", budget),
        event_id=parse_event_id(event_id),
        type=kind,
        transaction_id=check_identifier("transaction id", transaction_id),
        data=check_data(kind, data),
    )


def event_age_seconds(event_id: str, now: float) -> float:
    """Seconds since the event's ULID was minted (0 for an id minted in the future)."""
    return max(0.0, round(now - ULID.from_str(event_id).timestamp, 3))
