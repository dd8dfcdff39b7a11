"""Validated reads (I7): a read of transactions is only returned if it is provably current.

The pointer is read before and after the query. If both equal the head, no step committed
during the query (every step moves the pointer), so the items form the fold up to the head.
Otherwise catch up once and try again; if still behind, fail with StaleProjection naming both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker import logs
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.errors import InfrastructureError, StaleProjection
from worker.model.fold import Transaction

log = logs.get(__name__)


@dataclass(frozen=True, slots=True)
class TransactionsView:
    """A validated read: the transactions exactly as folded up to `as_of_event`, the head."""

    budget: str
    as_of_event: str | None
    transactions: list[Transaction]

    def as_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "as_of_event": self.as_of_event,
            "transactions": [t.as_json() for t in self.transactions],
        }


def read_transactions(
    store: Store, budget: str, *, projector: Projector | None = None, attempts: int = 3
) -> TransactionsView:
    """Return the budget's transactions as of its head. With a projector, a stale read is
    followed by a catch-up and another read; without one (`projector=None`) it fails at once."""
    for attempt in range(1, attempts + 1):
        head = store.head(budget)
        pointer = store.pointer(budget)
        if pointer == head:
            transactions = store.transactions(budget)
            after = store.pointer(budget)
            if after == pointer:
                return TransactionsView(budget, pointer, transactions)
        log.info("read is not current", budget=budget, pointer=pointer, head=head, attempt=attempt)
        if projector is None or attempt == attempts:
            break  # the last round only reads: a catch-up must be verified, not assumed
        try:
            projector.catch_up(budget)
        except InfrastructureError as exc:
            log.warning("catch-up during read failed", budget=budget, error=str(exc))
            break
    # Name what is true now, not what was read before the last catch-up.
    pointer = store.pointer(budget)
    raise StaleProjection(budget, pointer, store.head(budget))
