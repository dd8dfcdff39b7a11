"""The stream worker's one rule, shared by every deployment: a batch's distinct budgets are
caught up, what fails is handed to the retry queue, and what is neither caught up nor queued
stays *pending*. A consumer may only acknowledge stream records up to (not including) the
first record naming a pending budget: the KCL record processor holds its checkpoint while
anything is pending, the Lambda handler reports that record's sequence number in
`batchItemFailures`. Both call `settle`, so the rule has one implementation.

How budgets are caught up is injected (`CatchUpMany`: "catch up these budgets, tell me each
outcome"), so a batch-wide way of doing it (for example reading every budget's pointer and
head in one call) replaces `per_budget` without touching the rule. Only the catch-ups may run
on other threads; every outcome is settled here, on the caller's thread, one budget at a
time, so the rule reads as it would serially.

Deliberately free of amazon_kclpy: the Lambda package imports this module and ships no KCL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker import logs, metrics
from worker.engine import pool

log = logs.get(__name__)


class RetryQueue(Protocol):
    def enqueue(self, budget: str, reason: str) -> None: ...


class Outcome(Protocol):
    """One budget's result, as `pool.Done` carries it: the value, or the exception."""

    @property
    def item(self) -> str: ...
    @property
    def value(self) -> Any: ...
    @property
    def error(self) -> Exception | None: ...


# "Catch up these budgets": one outcome per budget, in any order (the shape of
# `worker.engine.catch_ups.catch_up_budgets` once its store is bound, or of `per_budget`).
CatchUpMany = Callable[[list[str]], Iterable[Outcome]]


def per_budget(catch_up: Callable[[str], Any], concurrency: int) -> CatchUpMany:
    """Each budget caught up on its own, at most `concurrency` at once, on the per-budget pool."""

    def run(budgets: list[str]) -> Iterable[Outcome]:
        return pool.run_all(catch_up, budgets, concurrency)

    return run


@dataclass(slots=True)
class Settlement:
    """What became of each budget handed to `settle`."""

    caught_up: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    # Neither caught up nor queued, with the reason: no acknowledgement may cover them.
    pending: dict[str, str] = field(default_factory=dict)

    @property
    def handled(self) -> list[str]:
        return [*self.caught_up, *self.queued]


def settle(
    budgets: Iterable[str],
    catch_up_many: CatchUpMany,
    queue: RetryQueue | None,
    *,
    logger: Any = None,
) -> Settlement:
    """Catch up the distinct `budgets`; hand each failure to `queue`; report the rest pending.

    Metrics: the catch-up figures, `CatchUpFailures`, `BudgetsQueued`. A queue that refuses a
    budget is logged and leaves it pending (the caller then must not acknowledge it)."""
    bound = logger if logger is not None else log
    distinct = list(dict.fromkeys(budgets))
    result = Settlement()
    if not distinct:
        return result
    figures = metrics.current()
    unanswered = dict.fromkeys(distinct)
    for done in catch_up_many(distinct):
        budget = done.item
        if budget not in unanswered:
            continue  # a duplicate or foreign outcome settles nothing twice
        del unanswered[budget]
        if done.error is None:
            value = done.value
            if hasattr(value, "applied"):
                metrics.record_catch_up(figures, value)
            details = value.as_json() if hasattr(value, "as_json") else {}
            details["budget"] = budget
            bound.info("budget caught up", **details)
            result.caught_up.append(budget)
            continue
        reason = str(done.error)
        figures.count("CatchUpFailures")
        bound.warning("catch-up failed", budget=budget, error=reason)
        if queue is not None:
            try:
                queue.enqueue(budget, reason)
            except Exception as exc:
                bound.error("enqueue failed", budget=budget, error=str(exc))
            else:
                figures.count("BudgetsQueued")
                result.queued.append(budget)
                continue
        result.pending[budget] = reason
    for budget in unanswered:  # never taken as handled without an outcome saying so
        bound.error("catch-up gave no outcome", budget=budget)
        result.pending[budget] = "catch-up gave no outcome"
    return result
