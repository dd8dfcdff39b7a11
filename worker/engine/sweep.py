"""The sweep (`catch-up --all`): catch up every budget that is behind, found without the stream,
and rebuild the snapshots of every budget left with dirty markers.

This is the recovery after an outage longer than the stream's retention (records expired, so
nothing would ever name those budgets again), after a projection rebuild into a fresh table,
after a stream worker died with snapshot rebuilds still deferred (their markers remain, I4),
and after any doubt. Budgets come from the sparse budgets index one page at a time and go through
the batch-wide catch-up (`worker.engine.catch_ups`): their pointers and heads are read 50
budgets per BatchGetItem, those behind are caught up (and their snapshots rebuilt), and those
current have their markers read and are rebuilt only if dirty. Work runs on the bounded
per-budget pool, so memory does not grow with the number of budgets. A failed budget is
reported and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from worker import logs
from worker.engine.catch_ups import catch_up_budgets
from worker.engine.projector import CatchUpResult, Projector
from worker.engine.reads import Store
from worker.engine.snapshots import SnapshotStore
from worker.errors import BudgetWorkerError

log = logs.get(__name__)


@dataclass(frozen=True, slots=True)
class SweepFailure:
    """A budget the sweep could not catch up, and why (the others were still swept)."""

    budget: str
    error: str


@dataclass(slots=True)
class SweepResult:
    """What one sweep found and did: budgets listed, how many were behind, events applied and
    rejected, and the budgets that failed."""

    budgets: int = 0
    behind: int = 0
    dirty: int = 0  # current, but left with dirty markers: snapshots rebuilt
    applied: int = 0
    rejected: int = 0
    failed: list[SweepFailure] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "budgets": self.budgets,
            "behind": self.behind,
            "dirty": self.dirty,
            "applied": self.applied,
            "rejected": self.rejected,
            "failed": [{"budget": f.budget, "error": f.error} for f in self.failed],
        }


def _reason(error: Exception) -> str:
    if isinstance(error, BudgetWorkerError):
        return str(error)
    return f"{type(error).__name__}: {error}"  # a botocore error that escaped the retries


def sweep(
    store: Store,
    rebuild: Callable[[str], Any],
    *,
    workers: int,
    projector: Projector | None = None,
    budgets: Iterable[str] | None = None,
    progress: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """Catch up every budget that is behind; rebuild the snapshots of every dirty one.

    Args:
        store: where the budgets, heads and pointers are read.
        rebuild: rebuilds a budget's dirty snapshots, after a catch-up that had work to do or
            for a current budget left with markers.
        workers: budgets handled at once.
        projector: the catch-up loop (its `--batch`); a default one on `store` otherwise.
        budgets: the budgets to consider (default: every budget, from the budgets index).
        progress: called after each budget with the running totals.
    """

    def then(result: CatchUpResult) -> tuple[str, CatchUpResult] | None:
        """("behind" | "dirty", result), or None for a budget current and clean."""
        if result.was_behind:
            rebuild(result.budget)
            return "behind", result
        if SnapshotStore(store).markers(result.budget):
            rebuild(result.budget)
            return "dirty", result
        return None

    total = SweepResult()
    listing = store.budgets() if budgets is None else iter(budgets)
    # follow_head: no later stream record may name a budget the sweep recovers.
    for done in catch_up_budgets(
        store, listing, then, projector=projector, workers=workers, follow_head=True
    ):
        total.budgets += 1
        if done.error is not None:  # counted as behind: it could not be shown current
            total.behind += 1
            failure = SweepFailure(done.item, _reason(done.error))
            total.failed.append(failure)
            log.warning("sweep: budget failed", budget=failure.budget, error=failure.error)
        elif done.value is not None:
            why, result = done.value
            if why == "behind":
                total.behind += 1
            else:
                total.dirty += 1
            total.applied += result.applied
            total.rejected += result.rejected
        if progress is not None:
            progress(total)
    total.failed.sort(key=lambda f: f.budget)
    log.info(
        "sweep finished",
        budgets=total.budgets,
        behind=total.behind,
        dirty=total.dirty,
        applied=total.applied,
        failed=len(total.failed),
    )
    return total
