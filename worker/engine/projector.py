"""The catch-up loop for one budget: step the pointer towards the head, one conditional
transaction per run of up to `batch` consecutive events (I2 allows a run; `--batch 1` is one
event per transaction).

Correctness rests on two facts, not on this loop being clever:
- persist orders writers by ULID through the head item (I1), so a strongly consistent read of
  events up to the head sees every event below it;
- every step is conditional on the pointer value this loop read (I2), so a step based on stale
  reads cannot commit. Any number of projectors may race on one budget: exactly one wins each
  step, the others re-read and continue.
An ambiguous step (no answer) is resolved by re-reading the pointer: at the event means the step
committed (ours or an identical one from a racing projector, since the fold is deterministic).
A batched step that an item condition (I3) cancels is retried one event per step over the same
stretch, so the one event whose item is ahead is found and rejected exactly as before; one that
DynamoDB refuses for its size is retried in halves. Neither fall-back can write a wrong state:
every attempt is a whole conditional step or nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

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
from worker.errors import InfrastructureError
from worker.model.events import Event, event_age_seconds
from worker.model.fold import Change, ChangeKind, Transaction, decide
from worker.model.step import POINTER_INDEX, TRANSACTION_INDEX, batch_items, fit

log = logs.get(__name__)


MAX_HEAD_REFRESHES = 3
RACE_PAUSE_SECONDS = 0.05
# Events per step by default, chosen by measurement (BENCHMARKS.md): DynamoDB's own limits (100
# items, 4 MB) cap a step further, and `fit` shortens any run that would pass them.
DEFAULT_BATCH = 50


class StepOutcome(Enum):
    COMMITTED = "committed"
    COMMITTED_INFERRED = "committed_inferred"  # ambiguous, resolved by re-reading the pointer
    POINTER_MOVED = "pointer_moved"
    ITEM_AHEAD = "item_ahead"
    TOO_LARGE = "too_large"  # a batched step DynamoDB refused for its size: nothing written


@dataclass(slots=True)
class CatchUpResult:
    """What one catch-up did: events applied and rejected (I6) by this call, and the pointer
    and head when it ended (equal unless events arrived meanwhile)."""

    budget: str
    applied: int = 0
    rejected: int = 0
    pointer: str | None = None
    head: str | None = None
    applied_ids: list[str] = field(default_factory=list)
    # For the operator's metrics: steps lost to a racing projector, and the age (seconds, from
    # its ULID) of the oldest unapplied event when this catch-up started (None: was current).
    conflicts: int = 0
    lag_seconds: float | None = None
    # The pointer was behind the head when this catch-up started (it had work to do).
    was_behind: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "applied": self.applied,
            "rejected": self.rejected,
            "pointer": self.pointer,
            "head": self.head,
        }


@dataclass(slots=True)
class Projector:
    store: Store
    backoff: Backoff = field(default_factory=lambda: Backoff(attempts=10))
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    # Events per step (1 = one event per transaction); see DEFAULT_BATCH.
    batch: int = DEFAULT_BATCH

    def catch_up(self, budget: str) -> CatchUpResult:
        """Apply every event up to the head (re-read at the end, so events persisted during
        the catch-up are applied too). Raises InfrastructureError if DynamoDB keeps failing;
        whatever committed before that stays committed and consistent."""
        pointer = self.store.pointer(budget)  # pointer first: then it can never pass the head
        head = self.store.head(budget)
        return self.catch_up_from(budget, pointer, head)

    def catch_up_from(
        self, budget: str, pointer: str | None, head: str | None, *, follow_head: bool = True
    ) -> CatchUpResult:
        """Apply every event after `pointer` up to `head`, both as the caller read them
        (strongly consistent; `catch_up_budgets` reads many budgets' at once). A stale
        pointer costs one lost conditional step (I2), never a wrong write; a stale head only
        means fewer events applied. With `follow_head`, the head is re-read at the end (at
        most MAX_HEAD_REFRESHES times) so events persisted meanwhile are applied too; the
        stream path passes False, because a later stream record names the budget for each of
        them anyway, and the re-read was one more sequential call per budget."""
        result = CatchUpResult(budget)
        result.was_behind = head is not None and (pointer is None or pointer < head)
        bound = log.bind(budget=budget)
        refreshes = 0 if follow_head else MAX_HEAD_REFRESHES
        cache: dict[str, Transaction | None] = {}
        # Events up to this id go one per step: a batched step over them was cancelled by an
        # item condition (I3), and single steps tell exactly which event to reject.
        single_until = ""
        while head is not None and (pointer is None or pointer < head):
            page = self.store.events_page(budget, pointer, head)
            if not page:
                raise InfrastructureError(
                    f"budget {budget!r}: head is {head} but no event after pointer {pointer} "
                    "was found; the events table is inconsistent"
                )
            if result.lag_seconds is None:
                result.lag_seconds = event_age_seconds(page[0].event_id, self.clock())
            position, limit = 0, max(1, self.batch)
            while position < len(page):
                run = page[
                    position : position + (1 if page[position].event_id <= single_until else limit)
                ]
                missing = {e.transaction_id for e in run} - cache.keys()
                if missing:
                    cache.update(self.store.live_transactions(budget, sorted(missing)))
                changes = self._decide(run, cache)
                changes = changes[: fit(budget, changes)]
                outcome = self._commit(budget, pointer, changes, bound)
                if outcome is StepOutcome.TOO_LARGE:
                    limit = max(1, len(changes) // 2)
                    continue
                if outcome is StepOutcome.ITEM_AHEAD and len(changes) > 1:
                    single_until = changes[-1].event.event_id
                    bound.info(
                        "batched step cancelled by an item condition, single steps",
                        upto=single_until,
                    )
                    continue
                if outcome is StepOutcome.ITEM_AHEAD:
                    [change] = changes
                    event, tid = change.event, change.event.transaction_id
                    if self._item_ahead(budget, tid, event):
                        # The item already reflects a later event while the pointer says it
                        # cannot: never overwrite it (I3) and never block the budget (I6).
                        changes = [
                            Change(
                                event,
                                ChangeKind.REJECT,
                                cache[tid],
                                cache[tid],
                                f"transaction {tid} already reflects a later event",
                            )
                        ]
                        outcome = self._commit(budget, pointer, changes, bound)
                if outcome in (StepOutcome.POINTER_MOVED, StepOutcome.ITEM_AHEAD):
                    # Another projector is ahead: let it run (a short random pause) rather
                    # than race it for every following step.
                    result.conflicts += 1
                    self.sleep(self.rng.uniform(0, RACE_PAUSE_SECONDS))
                    pointer = self.store.pointer(budget)
                    cache.clear()
                    bound.info(
                        "pointer moved by another projector, re-reading",
                        event_id=changes[0].event.event_id,
                        pointer=pointer,
                    )
                    break
                position += len(changes)
                pointer = changes[-1].event.event_id
                for change in changes:
                    tid = change.event.transaction_id
                    if outcome is StepOutcome.COMMITTED:
                        if change.kind is not ChangeKind.REJECT:
                            cache[tid] = change.after
                    else:
                        # Inferred from the pointer: the step that committed may not be the
                        # one we sent (a racing projector's), so re-read before using it again.
                        cache.pop(tid, None)
                    result.applied_ids.append(change.event.event_id)
                    if change.kind is ChangeKind.REJECT:
                        result.rejected += 1
                        bound.warning(
                            "event rejected", event_id=change.event.event_id, reason=change.reason
                        )
                    else:
                        result.applied += 1
            if pointer is not None and pointer >= head and refreshes < MAX_HEAD_REFRESHES:
                # Events persisted during this catch-up: take them too, a bounded number of
                # times, so that a hot budget cannot keep one call (or a reader) forever.
                refreshes += 1
                head = self.store.head(budget)
        result.pointer, result.head = pointer, head
        return result

    @staticmethod
    def _decide(run: list[Event], cache: dict[str, Transaction | None]) -> list[Change]:
        """The fold's decisions for a run, each event seeing the ones before it (the cache
        itself changes only once the step commits)."""
        current = {tid: cache[tid] for tid in {e.transaction_id for e in run}}
        changes = []
        for event in run:
            change = decide(current[event.transaction_id], event)
            if change.kind is not ChangeKind.REJECT:
                current[event.transaction_id] = change.after
            changes.append(change)
        return changes

    def _item_ahead(self, budget: str, tid: str, event: Any) -> bool:
        """Confirm the I3 condition really failed: the stored item carries a later event."""
        stored = self.store.transaction_state(budget, tid).last_event_id
        return stored is not None and stored >= event.event_id

    def _commit(
        self, budget: str, pointer: str | None, changes: list[Change], bound: Any
    ) -> StepOutcome:
        event_id = changes[-1].event.event_id
        items = batch_items(self.store.projections_table, budget, pointer, changes)
        delays = self.backoff.delays(self.rng)
        attempt = 0
        while True:
            attempt += 1
            try:
                self.store.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
                bound.debug(
                    "step committed", event_id=event_id, events=len(changes), attempt=attempt
                )
                return StepOutcome.COMMITTED
            except ClientError as exc:
                codes = cancellation_codes(exc)
                if error_code(exc) == TRANSACTION_CANCELED and CANCELLED_BY_CONDITION in codes:
                    # Only a decided pointer reason tells us anything: a conflict or throttle
                    # on the pointer next to a failed item condition is retried.
                    if codes[POINTER_INDEX] == CANCELLED_BY_CONDITION:
                        return StepOutcome.POINTER_MOVED
                    if codes[POINTER_INDEX] == ITEM_OK and (
                        len(changes) > 1
                        or codes[TRANSACTION_INDEX : TRANSACTION_INDEX + 1]
                        == [CANCELLED_BY_CONDITION]
                    ):
                        return StepOutcome.ITEM_AHEAD
                if len(changes) > 1 and error_code(exc) == "ValidationException":
                    # A limit DynamoDB counts differently from `fit` (size, item count):
                    # nothing was written; try a shorter run.
                    bound.info(
                        "batched step refused, shorter runs", events=len(changes), error=str(exc)
                    )
                    return StepOutcome.TOO_LARGE
                failure: Exception = exc
            except Exception as exc:
                failure = exc
            outcome = classify(failure, is_write=True)
            if outcome is Outcome.AMBIGUOUS:
                now = self.store.pointer(budget)
                bound.info(
                    "step outcome unknown, re-read pointer",
                    event_id=event_id,
                    attempt=attempt,
                    error=error_code(failure),
                    pointer=now,
                )
                if now == event_id:
                    return StepOutcome.COMMITTED_INFERRED
                if now != pointer:
                    return StepOutcome.POINTER_MOVED
            delay = next(delays, None)
            if outcome is Outcome.DEFINITE or delay is None:
                raise InfrastructureError(
                    f"budget {budget!r}: step to event {event_id} failed after {attempt} "
                    f"attempt(s): {error_code(failure)}: {failure}"
                ) from failure
            bound.info(
                "step failed, retrying",
                event_id=event_id,
                attempt=attempt,
                outcome=outcome.value,
                error=error_code(failure),
                delay=round(delay, 3),
            )
            self.sleep(delay)
