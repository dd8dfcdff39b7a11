"""Monthly snapshot figures, as defined in docs/CLI.md ("Conventions"). Pure.

A month's figures need only that month's transactions plus the closing balances of the month
before, so the rebuilder holds one month in memory at a time; `all_snapshots` is the whole
computation at once, the oracle the tests compare stored snapshots with.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.model.events import Event
from worker.model.fold import Transaction, fold


@dataclass(frozen=True, slots=True)
class MonthSnapshot:
    """One month's figures: income, expenses, net, totals by category, running balances per
    account, transaction count, and the event they reflect (`as_of_event`)."""

    month: str
    income: int
    expenses: int
    net: int
    by_category: Mapping[str, int]
    balances: Mapping[str, int]
    transaction_count: int
    as_of_event: str | None = None

    def figures(self) -> tuple[Any, ...]:
        """Everything but the event id: what two computations of a month must agree on."""
        return (
            self.month,
            self.income,
            self.expenses,
            self.net,
            dict(self.by_category),
            dict(self.balances),
            self.transaction_count,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "income": self.income,
            "expenses": self.expenses,
            "net": self.net,
            "by_category": dict(sorted(self.by_category.items())),
            "balances": dict(sorted(self.balances.items())),
            "transaction_count": self.transaction_count,
            "as_of_event": self.as_of_event,
        }


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def previous_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    out = []
    month = first
    while month <= last:
        out.append(month)
        month = next_month(month)
    return out


def last_day(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{month}-{calendar.monthrange(year, mon)[1]:02d}"


def month_snapshot(
    month: str,
    transactions: Iterable[Transaction],
    opening_balances: Mapping[str, int],
    as_of_event: str | None = None,
) -> MonthSnapshot:
    """Figures of `month` from its own transactions and the previous month's balances."""
    income = expenses = count = 0
    by_category: dict[str, int] = defaultdict(int)
    balances = dict(opening_balances)
    for txn in transactions:
        if txn.month != month:
            raise ValueError(f"transaction {txn.transaction_id} is dated {txn.date}, not {month}")
        count += 1
        if txn.amount > 0:
            income += txn.amount
        else:
            expenses += txn.amount
        by_category[txn.category] += txn.amount
        balances[txn.account] = balances.get(txn.account, 0) + txn.amount
    return MonthSnapshot(
        month, income, expenses, income + expenses, dict(by_category), balances, count, as_of_event
    )


def all_snapshots(
    transactions: Iterable[Transaction], as_of_event: str | None = None
) -> list[MonthSnapshot]:
    """Every month from the earliest to the latest holding a transaction, empty ones too."""
    by_month: dict[str, list[Transaction]] = defaultdict(list)
    for txn in transactions:
        by_month[txn.month].append(txn)
    if not by_month:
        return []
    out = []
    balances: Mapping[str, int] = {}
    for month in months_between(min(by_month), max(by_month)):
        snapshot = month_snapshot(month, by_month.get(month, []), balances, as_of_event)
        balances = snapshot.balances
        out.append(snapshot)
    return out


def figures_at(events: Iterable[Event], pointer: str | None) -> dict[str, tuple[Any, ...]]:
    """Each month's figures over the event log up to `pointer` (None: before any event): what
    a snapshot exact at that pointer shows, the oracle a snapshot read is checked against."""
    state = fold(e for e in events if pointer is not None and e.event_id <= pointer)
    return {s.month: s.figures() for s in all_snapshots(state.transactions.values())}
