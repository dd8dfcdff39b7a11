"""The persist path: store one event exactly once, in ULID order per budget (I1, I5).

One `TransactWriteItems` puts the event (condition: its key is absent) and moves the budget's
head item forward (condition: head absent or below the new ULID). The cancellation reasons of
a failed call say exactly what happened:

- event exists: compare content. Same content is our own earlier attempt or a client retry
  (duplicate, success); different content is a conflict (an error, never an overwrite).
- head is ahead and the event is absent: the event was never stored and never can be (the head
  only moves forward), so it is stored under a fresh ULID above the head ("reassigned").

A reassignment also writes an alias item (`ALIAS#<requested id>` -> stored id) in the same
transaction. Without it, a client that lost the answer to a reassigned persist and retried
with its original id would be reassigned a second time, storing the intent twice. With it, the
retry finds the alias and reports a duplicate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError
from ulid import ULID

from worker import logs
from worker.engine.backoff import Backoff
from worker.engine.failures import (
    CANCELLED_BY_CONDITION,
    ITEM_OK,
    TRANSACTION_CANCELED,
    Outcome,
    cancellation_codes,
    classify,
    error_code,
)
from worker.engine.reads import Store
from worker.errors import EventConflict, InfrastructureError, PersistFailed
from worker.model import layout
from worker.model.events import Event, build_event, parse_event_id

log = logs.get(__name__)

ALIAS_PREFIX = "ALIAS#"
# Every pass of the persist loop counts, head races included: a writer never spins for ever.
MAX_LAPS = 30


class PersistStatus(StrEnum):
    """How a persist ended; all three are success.

    `created`: stored now. `duplicate`: this intent was already stored by an earlier attempt
    (I5). `reassigned`: the requested id was behind the head, so it was stored under a fresh
    id above it (I1).
    """

    CREATED = "created"
    DUPLICATE = "duplicate"
    REASSIGNED = "reassigned"


@dataclass(frozen=True, slots=True)
class PersistResult:
    """The outcome of `persist`: the id the event is stored under (keep it) and its status.

    `requested_event_id` is set when the stored id differs from the one asked for.
    """

    budget: str
    event_id: str
    status: PersistStatus
    requested_event_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "budget": self.budget,
            "event_id": self.event_id,
            "status": str(self.status),
        }
        if self.requested_event_id is not None and self.requested_event_id != self.event_id:
            # reassigned now, or a duplicate of an intent reassigned by an earlier call
            out["requested_event_id"] = self.requested_event_id
        return out


def new_event_id(clock: Callable[[], float] = time.time) -> str:
    return str(ULID.from_timestamp(clock()))


def event_id_above(head: str, clock: Callable[[], float], rng: random.Random) -> str:
    """A ULID greater than `head`: from the local clock if it is ahead of the head, else just
    above the head (a random gap so that racing writers rarely pick the same one). Random bits
    come from `rng`, so a seeded simulation mints the same ids every run."""
    millis = int(clock() * 1000)
    fresh = str(ULID.from_int((millis << 80) | rng.getrandbits(80)))
    if fresh > head:
        return fresh
    above = int(ULID.from_str(head)) + rng.randint(1, 2**32)
    if above >= 2**128:
        raise InfrastructureError(f"the head {head} is at the end of the ULID range")
    return str(ULID.from_int(above))


def alias_sk(event_id: str) -> str:
    return ALIAS_PREFIX + event_id


@dataclass(slots=True)
class Persister:
    store: Store
    clock: Callable[[], float] = time.time
    # How this persister mints ids when the caller gives none (seeded in the simulation).
    new_id: Callable[[], str] | None = None
    backoff: Backoff = field(default_factory=lambda: Backoff(attempts=8))
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def persist(
        self,
        budget: str,
        event_type: str,
        transaction_id: str,
        data: object,
        event_id: str | None = None,
    ) -> PersistResult:
        """Validate and persist one intent; raise InvalidInput (nothing written),
        EventConflict, or InfrastructureError (outcome unknown: retry with the same id)."""
        requested = parse_event_id(event_id, now=self.clock()) if event_id is not None else None
        event = build_event(
            budget,
            event_type,
            transaction_id,
            data,
            requested or (self.new_id() if self.new_id else new_event_id(self.clock)),
        )
        return self._persist(event, requested)

    def _persist(self, event: Event, requested: str | None) -> PersistResult:
        bound = log.bind(budget=event.budget, requested_event_id=requested)
        delays = self.backoff.delays(self.rng)
        attempt = 0
        unknown = False  # did any attempt end ambiguously (it may have been stored)?
        while True:
            attempt += 1
            if attempt > MAX_LAPS:
                retry_id = requested or event.event_id
                raise PersistFailed(
                    f"persisting to budget {event.budget!r} gave up after {MAX_LAPS} attempts "
                    f"(the head kept moving); retry with event id {retry_id}",
                    retry_id,
                    unknown,
                )
            reassigned = requested is not None and event.event_id != requested
            try:
                self.store.client.transact_write_items(
                    TransactItems=self._items(event, requested if reassigned else None)
                )
            except ClientError as exc:
                codes = cancellation_codes(exc)
                # The verdict is only sound when the event item's own reason is known: its
                # condition failed (it exists) or held ("None": absent). A conflict or throttle
                # on it says nothing, so that case is retried like any conflict.
                decisive = bool(codes) and codes[0] in (CANCELLED_BY_CONDITION, ITEM_OK)
                if (
                    error_code(exc) == TRANSACTION_CANCELED
                    and CANCELLED_BY_CONDITION in codes
                    and decisive
                ):
                    resolved = self._resolve_cancel(event, requested, exc, codes, bound)
                    if isinstance(resolved, PersistResult):
                        return resolved
                    if resolved.event_id != event.event_id:
                        self.sleep(self.rng.uniform(0, 0.02))  # lost a head race: jitter
                    event = resolved
                    continue
                failure: Exception = exc
            except Exception as exc:
                failure = exc
            else:
                status = PersistStatus.REASSIGNED if reassigned else PersistStatus.CREATED
                bound.info(
                    "event persisted", event_id=event.event_id, status=str(status), attempt=attempt
                )
                return PersistResult(event.budget, event.event_id, status, requested)
            outcome = classify(failure, is_write=True)
            unknown = unknown or outcome is Outcome.AMBIGUOUS
            delay = next(delays, None)
            if outcome is Outcome.DEFINITE or delay is None:
                retry_id = requested or event.event_id
                hint = (
                    f"; the outcome is unknown: retry with event id {retry_id}"
                    if unknown
                    else f"; nothing was stored: retry (with event id {retry_id} to be safe)"
                )
                raise PersistFailed(
                    f"persisting event {event.event_id} for budget {event.budget!r} failed "
                    f"after {attempt} attempt(s): {error_code(failure)}{hint}",
                    retry_id,
                    unknown,
                ) from failure
            bound.info(
                "persist failed, retrying",
                event_id=event.event_id,
                attempt=attempt,
                outcome=outcome.value,
                error=error_code(failure),
                delay=round(delay, 3),
            )
            self.sleep(delay)

    def _items(self, event: Event, alias_of: str | None) -> list[Any]:
        item = layout.event_item(event)
        if alias_of is not None:
            item["requested_event_id"] = layout.s(alias_of)
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.store.events_table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(sk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Update": {
                    "TableName": self.store.events_table,
                    "Key": layout.key(event.budget, layout.HEAD_SK),
                    # The bucket is set by the budget's first event and never changes, so the
                    # budgets index is written once per budget (layout.BUDGETS_INDEX).
                    "UpdateExpression": "SET last_event_id = :e, #b = if_not_exists(#b, :b)",
                    "ConditionExpression": "attribute_not_exists(last_event_id) "
                    "OR last_event_id < :e",
                    "ExpressionAttributeNames": {"#b": layout.BUCKET},
                    "ExpressionAttributeValues": {
                        ":e": layout.s(event.event_id),
                        ":b": layout.s(layout.bucket_of(event.budget)),
                    },
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ]
        if alias_of is not None:
            items.append(
                {
                    "Put": {
                        "TableName": self.store.events_table,
                        "Item": {
                            **layout.key(event.budget, alias_sk(alias_of)),
                            "event_id": layout.s(event.event_id),
                        },
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                }
            )
        return items

    def _resolve_cancel(
        self,
        event: Event,
        requested: str | None,
        exc: ClientError,
        codes: list[str],
        bound: Any,
    ) -> PersistResult | Event:
        """Turn a cancelled persist into a result, or into the event to try next."""
        reasons = exc.response.get("CancellationReasons") or []
        if codes and codes[0] == CANCELLED_BY_CONDITION:
            old = reasons[0].get("Item") if reasons else None
            stored = (
                layout.event_from_item(dict(old))
                if old
                else self.store.event(event.budget, event.event_id)
            )
            if stored is None:  # events are never deleted; a retry will see it again
                return event
            if stored.same_content(event):
                return self._found(event, stored.event_id, requested, bound)
            if event.event_id == requested:
                raise EventConflict(
                    f"event {requested} already exists in budget {event.budget!r} with "
                    "different content; nothing was written"
                )
            # An id we generated collided with another writer's (80 random bits: not in
            # practice, but never overwrite): fall through and pick a fresh one.
        elif requested is not None:
            # The head is ahead and the event is absent. If this intent was reassigned before
            # (by an earlier call whose answer was lost, or a racing retry), the alias says so.
            found = self._via_alias(event, requested, bound)
            if found is not None:
                return found
        # The cancelled Update returned the head it saw (ALL_OLD); read it only if it did not.
        old_head = reasons[1].get("Item") if len(reasons) > 1 else None
        head = (
            layout.string_attr(dict(old_head), layout.LAST_EVENT_ID)
            if old_head
            else self.store.head(event.budget)
        )
        if head is None:  # cannot be once the head condition failed; retrying is safe
            return event
        if head == event.event_id:
            return event  # the head only ever names a stored event: look again, don't reassign
        fresh = event_id_above(head, self.clock, self.rng)
        bound.info(
            "head is ahead, reassigning", event_id=event.event_id, head=head, new_event_id=fresh
        )
        return replace(event, event_id=fresh)

    def _found(
        self, event: Event, stored_id: str, requested: str | None, bound: Any
    ) -> PersistResult:
        """The intent is already stored under `stored_id`. If that id is the client's, this
        is a duplicate; if this call chose it, an earlier attempt of this call committed."""
        if requested is None:
            status = PersistStatus.CREATED
        elif stored_id == requested:
            status = PersistStatus.DUPLICATE
        else:
            status = PersistStatus.REASSIGNED
        bound.info("event already stored", event_id=stored_id, status=str(status))
        return PersistResult(event.budget, stored_id, status, requested)

    def _via_alias(self, event: Event, requested: str, bound: Any) -> PersistResult | None:
        alias = self.store.item(self.store.events_table, event.budget, alias_sk(requested))
        target = layout.string_attr(alias, "event_id")
        if target is None:
            return None
        stored = self.store.event(event.budget, target)
        if stored is None:
            raise InfrastructureError(
                f"alias {requested} of budget {event.budget!r} points to missing event {target}"
            )
        if not stored.same_content(event):
            raise EventConflict(
                f"event {requested} was already stored (as {target}) in budget "
                f"{event.budget!r} with different content; nothing was written"
            )
        bound.info("intent already stored under alias", event_id=target)
        return PersistResult(event.budget, target, PersistStatus.DUPLICATE, requested)
