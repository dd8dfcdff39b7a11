"""Show a budget: transactions that are provably current (I7), and monthly snapshots."""

from __future__ import annotations

from worker import BudgetWorker, StaleProjection


def show_budget(budgets: BudgetWorker, budget: str) -> list[str]:
    try:
        view = budgets.transactions(budget)  # catches up first if the projection is behind
    except StaleProjection as stale:
        return [f"still catching up: applied up to {stale.pointer}, latest is {stale.head}"]
    lines = [f"{t.date} {t.amount:>8} {t.category} ({t.account})" for t in view.transactions]
    for entry in budgets.snapshots(budget).entries:
        if entry.snapshot is None or not entry.fresh:
            lines.append(f"{entry.month}: being recomputed")
        else:
            lines.append(f"{entry.month}: net {entry.snapshot.net}")
    return lines
