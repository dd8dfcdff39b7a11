"""Record a user's change exactly once, even when DynamoDB's answer is lost (I5)."""

from __future__ import annotations

from typing import Any

from worker import BudgetWorker, PersistFailed, PersistResult


def record_change(
    budgets: BudgetWorker,
    budget: str,
    event_type: str,
    transaction_id: str,
    data: dict[str, Any] | None,
    *,
    event_id: str | None = None,
    attempts: int = 3,
) -> PersistResult:
    """Persist one intent. `event_id` is None for a new intent; an app that lets the user
    retry later keeps the id (say, in the form) and passes it back."""
    for attempt in range(1, attempts + 1):
        try:
            return budgets.persist(budget, event_type, transaction_id, data, event_id=event_id)
        except PersistFailed as failure:
            # Keep the intent's id: if an attempt that looked failed was stored after all, the
            # retry reports "duplicate" instead of storing the change a second time.
            event_id = failure.retry_event_id
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")
