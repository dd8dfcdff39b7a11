"""Lag per budget (`budget-worker status`): how far behind the projection is, in events and in
time, with the budgets found through the sparse budgets index (never by reading events)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from worker.engine.reads import Store
from worker.model.events import event_age_seconds


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget's lag. `lag_seconds` is the age of the oldest event not yet applied (from
    its ULID's timestamp; 0 when caught up), the figure an operator alarms on."""

    budget: str
    head: str | None
    pointer: str | None
    behind: int
    lag_seconds: float
    dirty_months: list[str]
    rejected: int

    def as_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "head": self.head,
            "pointer": self.pointer,
            "behind": self.behind,
            "lag_seconds": self.lag_seconds,
            "dirty_months": self.dirty_months,
            "rejected": self.rejected,
        }


def lag_seconds(
    store: Store, budget: str, pointer: str | None, head: str | None, now: float
) -> float:
    if head is None or (pointer is not None and pointer >= head):
        return 0.0
    oldest = store.events_page(budget, pointer, head, limit=1)
    return event_age_seconds(oldest[0].event_id, now) if oldest else 0.0


def budget_status(
    store: Store, budget: str, clock: Callable[[], float] = time.time
) -> BudgetStatus:
    pointer = store.pointer(budget)  # pointer first: then it can never pass the head
    head = store.head(budget)
    return BudgetStatus(
        budget=budget,
        head=head,
        pointer=pointer,
        behind=store.count_events_after(budget, pointer, head),
        lag_seconds=lag_seconds(store, budget, pointer, head, clock()),
        dirty_months=store.dirty_months(budget),
        rejected=len(store.rejected(budget)),
    )


def is_behind(store: Store, budget: str) -> bool:
    """Two strongly consistent reads: cheap enough to ask of every budget in a sweep."""
    pointer = store.pointer(budget)
    head = store.head(budget)
    return head is not None and (pointer is None or pointer < head)


def statuses(
    store: Store,
    budget: str | None = None,
    *,
    behind_only: bool = False,
    clock: Callable[[], float] = time.time,
) -> Iterator[BudgetStatus]:
    """The status of one budget, or of every budget one at a time (memory for one page of the
    listing, whatever the number of budgets). `behind_only` skips caught-up budgets after two
    reads, without the counting queries."""
    budgets = iter([budget]) if budget is not None else store.budgets()
    for name in budgets:
        if behind_only and not is_behind(store, name):
            continue
        found = budget_status(store, name, clock)
        if behind_only and found.behind == 0:
            continue  # caught up between the two reads
        yield found
