"""Assembles the long-running pieces (projector, retry queue, record processor) from settings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from worker import logs, metrics
from worker.config import Settings, ToolSettings
from worker.engine import aws
from worker.engine.catch_ups import catch_up_budgets
from worker.engine.pool import Done
from worker.engine.projector import CatchUpResult, Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder
from worker.stream.deferred_rebuilds import DeferredRebuilds
from worker.stream.record_processor import BudgetRecordProcessor
from worker.stream.retry_queue import SqsRetryQueue
from worker.stream.settle import CatchUpMany

log = logs.get(__name__)


def retry_queue(settings: Settings) -> SqsRetryQueue | None:
    if not settings.retry_queue_url:
        return None
    return SqsRetryQueue(aws.sqs(settings), settings.retry_queue_url)


def budget_handler(settings: Settings) -> Callable[[str], CatchUpResult]:
    """What the retry queue's consumer does for a budget: catch it up, then rebuild its
    dirty snapshots here (it must succeed too: a queued budget is already the slow path).
    The stream's batches go through `stream_catch_up_all` instead."""
    store = Store.from_settings(aws.dynamodb(settings), settings)
    return catch_up_then_rebuild(Projector(store), Rebuilder(store))


def deferred_rebuilds(settings: Settings) -> DeferredRebuilds | None:
    """The stream worker's background rebuilder, or None when BUDGET_SNAPSHOT_DELAY is 0
    (rebuild inline after each budget's catch-up, as the retry queue does)."""
    if settings.snapshot_delay <= 0:
        return None
    store = Store.from_settings(aws.dynamodb(settings), settings)
    return DeferredRebuilds(Rebuilder(store).rebuild, delay=settings.snapshot_delay)


def catch_up_then_rebuild(
    projector: Projector, rebuilder: Rebuilder
) -> Callable[[str], CatchUpResult]:
    def handle(budget: str) -> CatchUpResult:
        result = projector.catch_up(budget)
        rebuilder.rebuild(budget)
        return result

    return handle


def stream_catch_up_all(
    store: Store,
    then: Callable[[CatchUpResult], CatchUpResult],
    *,
    workers: int,
    projector: Projector | None = None,
) -> CatchUpMany:
    """The stream's batch-wide catch-up: a batch's pointers and heads read together, the
    budgets behind caught up on `workers` threads, each followed by `then` (mark or rebuild
    its snapshots). The head is not re-read after a catch-up: a later record names the budget
    for every event persisted since (`worker.engine.catch_ups`)."""

    def catch_up_all(budgets: list[str]) -> Iterator[Done[str, CatchUpResult]]:
        return catch_up_budgets(
            store, budgets, then, projector=projector, workers=workers, follow_head=False
        )

    return catch_up_all


def after_catch_up(
    rebuilder: Rebuilder, deferred: DeferredRebuilds | None
) -> Callable[[CatchUpResult], CatchUpResult]:
    """What follows a budget's catch-up on the stream: schedule its snapshot rebuild on
    `deferred` (also when it was current: a reader's catch-up or a worker that died may have
    left markers), or rebuild inline without it (BUDGET_SNAPSHOT_DELAY=0)."""

    def then(result: CatchUpResult) -> CatchUpResult:
        if deferred is not None:
            deferred.mark(result.budget)
        else:
            rebuilder.rebuild(result.budget)
        return result

    return then


def record_processor(
    settings: Settings, deferred: DeferredRebuilds | None = None
) -> BudgetRecordProcessor:
    # Then the child exits and the shard is re-read from its last checkpoint.
    attempts = ToolSettings.from_env().shard_end_attempts
    store = Store.from_settings(aws.dynamodb(settings), settings)
    return BudgetRecordProcessor(
        queue=retry_queue(settings),
        catch_up_all=stream_catch_up_all(
            store,
            after_catch_up(Rebuilder(store), deferred),
            workers=settings.concurrency,
            projector=Projector(store),
        ),
        shard_end_attempts=max(1, attempts),
    )


def run_kcl_processor(settings: Settings) -> None:
    """The executable the MultiLangDaemon spawns: MultiLang protocol on stdin/stdout, logs to
    the supervisor's channel (stderr only for warnings and errors: the daemon logs every
    stderr line of its children as an ERROR)."""
    from amazon_kclpy.kcl import KCLProcess

    logs.configure_child()
    metrics.configure(child=True)  # figures go to `run` through the supervisor channel
    deferred = deferred_rebuilds(settings)
    processor = record_processor(settings, deferred)
    log.info(
        "kcl-processor started",
        retry_queue=bool(settings.retry_queue_url),
        snapshot_delay=settings.snapshot_delay,
    )
    if deferred is not None:
        deferred.start()
    try:
        KCLProcess(
            processor, input_file=sys.stdin, output_file=sys.stdout, error_file=sys.stderr
        ).run()
    finally:
        if deferred is not None:
            deferred.close()
