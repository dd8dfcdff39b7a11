"""The exceptions budget-worker raises, one class per outcome a caller acts on.

Every failure ends in one of three families, and a caller reacts to the family:

- `InvalidInput`: the input is wrong and nothing was written; fix it, do not retry.
- `InfrastructureError`: DynamoDB (or another dependency) kept failing after retries; retry
  later (for a persist: with `PersistFailed.retry_event_id`, so the retry stays exactly-once).
- `StaleProjection`: the projection is behind its head and could not be brought up to date.

This module is pure (no botocore) so the domain model can raise these without loading the AWS
SDK; how a botocore failure is classified lives in `worker.engine.failures`. The CLI maps the
families onto its exit codes (2, 1 and 3); the messages here never name a command-line flag.
"""

from __future__ import annotations

__all__ = [
    "BudgetWorkerError",
    "EventConflict",
    "InfrastructureError",
    "InvalidInput",
    "PersistFailed",
    "StaleProjection",
]


class BudgetWorkerError(Exception):
    """Base class of every error budget-worker raises on purpose; catch it to catch them all."""


class InvalidInput(BudgetWorkerError):
    """The caller's input is wrong; nothing was written. Retrying the same input fails again."""


class EventConflict(InvalidInput):
    """The event id already holds different content (I5: an id is never overwritten)."""


class InfrastructureError(BudgetWorkerError):
    """DynamoDB (or another dependency) kept failing after retries; nothing is half-written."""


class PersistFailed(InfrastructureError):
    """Persisting gave up.

    Attributes:
        retry_event_id: the id to retry the same intent with (I5). A retry with it reports
            `duplicate` if an earlier attempt was stored after all, and stores it otherwise.
        outcome_unknown: True if some attempt may have been stored (its answer was lost);
            False if every attempt definitely stored nothing.
    """

    def __init__(self, message: str, retry_event_id: str, outcome_unknown: bool) -> None:
        super().__init__(message)
        self.retry_event_id = retry_event_id
        self.outcome_unknown = outcome_unknown


class StaleProjection(BudgetWorkerError):
    """The projection is behind the head and could not be brought up to date (I7).

    Attributes:
        budget: the budget read.
        pointer: the last event applied to the projection (None: nothing applied yet).
        head: the budget's latest persisted event (None: no event yet).
    """

    def __init__(self, budget: str, pointer: str | None, head: str | None) -> None:
        self.budget = budget
        self.pointer = pointer
        self.head = head
        super().__init__(
            f"projection of budget {budget!r} is stale: pointer={pointer or 'none'} "
            f"head={head or 'none'}"
        )
