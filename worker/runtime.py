"""Assembles the long-running pieces (projector, retry queue, record processor) from settings."""

from __future__ import annotations

import sys
from typing import Any

from worker import aws, logs
from worker.config import Settings
from worker.projector import Projector
from worker.reads import Store
from worker.record_processor import BudgetRecordProcessor
from worker.retry_queue import SqsRetryQueue

log = logs.get(__name__)


def retry_queue(settings: Settings) -> SqsRetryQueue | None:
    if not settings.retry_queue_url:
        return None
    return SqsRetryQueue(aws.sqs(settings), settings.retry_queue_url)


def budget_handler(settings: Settings) -> Any:
    """What the worker does for a budget named by a stream record or a queue message."""
    store = Store.from_settings(aws.dynamodb(settings), settings)
    return Projector(store).catch_up


def record_processor(settings: Settings) -> BudgetRecordProcessor:
    return BudgetRecordProcessor(budget_handler(settings), retry_queue(settings))


def run_kcl_processor(settings: Settings) -> None:
    """The executable the MultiLangDaemon spawns: MultiLang protocol on stdin/stdout."""
    from amazon_kclpy.kcl import KCLProcess

    processor = record_processor(settings)
    log.info("kcl-processor started", retry_queue=bool(settings.retry_queue_url))
    KCLProcess(processor, input_file=sys.stdin, output_file=sys.stdout, error_file=sys.stderr).run()
