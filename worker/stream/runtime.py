"""Assembles the long-running pieces (projector, retry queue, record processor) from settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from worker import logs, metrics
from worker.config import Settings
from worker.engine import aws
from worker.engine.projector import CatchUpResult, Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder
from worker.stream.deferred_rebuilds import DeferredRebuilds
from worker.stream.record_processor import BudgetRecordProcessor
from worker.stream.retry_queue import SqsRetryQueue

log = logs.get(__name__)


def retry_queue(settings: Settings) -> SqsRetryQueue | None:
    if not settings.retry_queue_url:
        return None
    return SqsRetryQueue(aws.sqs(settings), settings.retry_queue_url)


def budget_handler(
    settings: Settings, deferred: DeferredRebuilds | None = None
) -> Callable[[str], CatchUpResult]:
    """What the worker does for a budget named by a stream record or a queue message: catch
    it up, then have its dirty snapshots rebuilt. With `deferred`, the rebuild is scheduled on
    it and the budget counts as handled once caught up (the stream's path: the markers are the
    durable record, I4); without, it runs here and must succeed too (the retry queue's path,
    where a budget is already a slow case)."""
    store = Store.from_settings(aws.dynamodb(settings), settings)
    projector = Projector(store)
    if deferred is None:
        return catch_up_then_rebuild(projector, Rebuilder(store))
    return catch_up_then_mark(projector, deferred)


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


def catch_up_then_mark(
    projector: Projector, deferred: DeferredRebuilds
) -> Callable[[str], CatchUpResult]:
    def handle(budget: str) -> CatchUpResult:
        result = projector.catch_up(budget)
        deferred.mark(budget)  # also when nothing was applied: a crash may have left markers
        return result

    return handle


def record_processor(
    settings: Settings, deferred: DeferredRebuilds | None = None
) -> BudgetRecordProcessor:
    # How many times shard end retries pending budgets before the child exits (and the shard
    # is re-read from its last checkpoint); backoff doubles from 1 s up to 30 s.
    attempts = int(os.environ.get("BUDGET_SHARD_END_ATTEMPTS", "6"))
    return BudgetRecordProcessor(
        budget_handler(settings, deferred),
        retry_queue(settings),
        shard_end_attempts=max(1, attempts),
        concurrency=settings.concurrency,
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
