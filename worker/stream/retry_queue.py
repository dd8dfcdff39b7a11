"""The retry queue: budgets that still fail after in-process retries are handed to SQS.

A stream record may only be checkpointed once its budget was caught up or handed here. The
worker also consumes the queue; a message is deleted only after its budget caught up, so a
failing budget comes back after the visibility timeout and, after the queue's
`maxReceiveCount`, moves to the dead-letter queue (infra/ sets the redrive policy). A malformed
message is never deleted by the worker either: it reaches the dead-letter queue the same way,
where an operator can see it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker import logs, metrics
from worker.errors import BudgetWorkerError, InvalidInput
from worker.model.events import check_identifier

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logs.get(__name__)


class EnqueueFailed(BudgetWorkerError):
    """The budget could not be handed to the retry queue."""


@dataclass(frozen=True, slots=True)
class QueuedBudget:
    budget: str | None
    receipt_handle: str
    receive_count: int
    problem: str | None = None


def encode(budget: str, reason: str) -> str:
    return json.dumps(
        {
            "budget": budget,
            "reason": reason[:1000],
            "enqueued_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        sort_keys=True,
    )


def decode(body: str) -> str:
    """The budget a message names, or InvalidInput saying what is wrong with it."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, TypeError):
        raise InvalidInput("queue message is not JSON") from None
    if not isinstance(document, dict) or "budget" not in document:
        raise InvalidInput("queue message has no budget")
    return check_identifier("budget", document["budget"])


@dataclass(slots=True)
class SqsRetryQueue:
    client: SQSClient
    url: str

    def enqueue(self, budget: str, reason: str) -> None:
        try:
            self.client.send_message(QueueUrl=self.url, MessageBody=encode(budget, reason))
        except Exception as exc:
            raise EnqueueFailed(f"cannot enqueue budget {budget!r}: {exc}") from exc
        log.warning("budget handed to the retry queue", budget=budget, reason=reason)

    def receive(self, wait_seconds: int = 10) -> list[QueuedBudget]:
        response = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        out = []
        for message in response.get("Messages", []):
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            try:
                out.append(
                    QueuedBudget(decode(message.get("Body", "")), message["ReceiptHandle"], count)
                )
            except InvalidInput as exc:
                out.append(QueuedBudget(None, message["ReceiptHandle"], count, str(exc)))
        return out

    def delete(self, message: QueuedBudget) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)


def consume(
    queue: SqsRetryQueue,
    catch_up: Callable[[str], Any],
    stop: threading.Event,
    *,
    wait_seconds: int = 10,
) -> None:
    """Catch up every budget the queue names until `stop` is set."""
    while not stop.is_set():
        try:
            messages = queue.receive(wait_seconds)
        except Exception as exc:
            log.warning("retry queue receive failed", error=str(exc))
            stop.wait(1.0)
            continue
        for message in messages:
            try:
                handle_message(queue, catch_up, message)
            except Exception as exc:  # e.g. DeleteMessage failed: the message comes back
                log.warning("retry queue message not settled", error=str(exc))
        if messages:
            metrics.current().flush()  # once per received batch, as the record processor does


def handle_message(
    queue: SqsRetryQueue, catch_up: Callable[[str], Any], message: QueuedBudget
) -> bool:
    """Process one message; True if it was deleted (its budget caught up). Its catch-up counts
    in the metrics like a stream batch's (`EventsApplied`, `ProjectionLagSeconds`,
    `CatchUpFailures`, ...): the queued budgets are the ones furthest behind, so leaving them
    out would hide exactly the lag the projection-lag alarm is for."""
    if message.budget is None:
        log.error(
            "malformed retry queue message left for the dead-letter queue",
            problem=message.problem,
            receive_count=message.receive_count,
        )
        return False
    try:
        result = catch_up(message.budget)
    except Exception as exc:
        metrics.current().count("CatchUpFailures")
        log.warning(
            "queued budget still failing",
            budget=message.budget,
            receive_count=message.receive_count,
            error=str(exc),
        )
        return False
    if hasattr(result, "applied"):  # a CatchUpResult; counted even if the delete fails
        metrics.record_catch_up(metrics.current(), result)
    queue.delete(message)
    log.info("queued budget caught up", budget=message.budget)
    return True
