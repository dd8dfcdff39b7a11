"""Lag per budget (`budget-worker status`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.engine.reads import Store


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    budget: str
    head: str | None
    pointer: str | None
    behind: int
    dirty_months: list[str]
    rejected: int

    def as_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "head": self.head,
            "pointer": self.pointer,
            "behind": self.behind,
            "dirty_months": self.dirty_months,
            "rejected": self.rejected,
        }


def budget_status(store: Store, budget: str) -> BudgetStatus:
    pointer = store.pointer(budget)
    head = store.head(budget)
    return BudgetStatus(
        budget=budget,
        head=head,
        pointer=pointer,
        behind=store.count_events_after(budget, pointer, head),
        dirty_months=store.dirty_months(budget),
        rejected=len(store.rejected(budget)),
    )


def statuses(store: Store, budget: str | None = None) -> list[BudgetStatus]:
    budgets = [budget] if budget is not None else store.budgets()
    return [budget_status(store, b) for b in budgets]
