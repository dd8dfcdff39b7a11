"""The worker as an AWS Lambda function behind a DynamoDB Streams event source mapping (ESM).

`handler(event, context)` is the function's entry point (infra/budget-worker.yaml declares it).
It is a thin adapter from Lambda's shapes onto the stream worker's one rule
(`worker.stream.settle`, the rule the KCL record processor keeps): the batch's distinct budgets
are caught up through the same pool and batched steps, failures go to the retry queue, and the
answer is a partial batch response whose `batchItemFailures` names the **earliest record whose
budget was neither caught up nor queued** (empty otherwise). Lambda then moves the shard's
checkpoint to just before that record and retries from it; re-delivering the records after it
is harmless, because a catch-up of a current budget does nothing. One identifier, not one per
failed record: Lambda restarts from the lowest reported sequence number anyway, which is why
Powertools' `BatchProcessor` (record by record, reporting every failure) is not used here.

Why this is safe under any ESM setting (ParallelizationFactor up to 10, bisection, retries,
duplicates): a record only says "budget B changed"; the projector re-reads head, pointer and
events and every step is conditional (I2, I3), so two invocations catching up the same budget
at once, or a record delivered twice or out of order, cannot produce a wrong projection.

Records are classified by `records.change_of`. Only event items name budgets: every persist
writes an event item, and head and alias items change only in the same transaction as one, so
their records (and REMOVEs, time-to-live deletions and other tables' items) are skipped and
counted. A malformed record is logged with its sequence number and skipped: it names nothing we
could project, and failing the batch for it would block the shard until the record expires.

Snapshots are rebuilt after the response's budgets are caught up, budget by budget, only while
the invocation has time left for one more (`context.get_remaining_time_in_millis()`, with the
slowest rebuild seen so far plus a reserve); the rest keep their dirty markers for the next
batch naming the budget or the sweep (I4 makes that safe). A rebuild failure never fails the
batch.

The same function also accepts the retry queue's SQS batches (an SQS event source mapping on
it): each message's budget is caught up and rebuilt, and the messages whose budget still fails
are reported as `batchItemFailures` by message id, so SQS redelivers them and finally moves
them to the dead-letter queue, as the ECS worker's queue consumer does.

Imports neither amazon_kclpy nor the CLI: the deployment zip ships no KCL.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker import logs, metrics
from worker.config import Settings
from worker.engine import pool
from worker.errors import InvalidInput
from worker.stream import records, settle
from worker.stream.retry_queue import decode as decode_queue_message

log = logs.get(__name__)

# Time kept back after the last rebuild, so the function returns its response before the
# invocation's timeout (a timed-out invocation is a failed batch, retried whole).
RESERVE_MILLIS = 2_000
# Before any rebuild was measured, assume one takes this long.
FIRST_REBUILD_GUESS_MILLIS = 1_000


class Context(Protocol):
    """The part of Lambda's context object this handler uses."""

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(slots=True)
class BatchReport:
    """What one invocation did (logged as one line; the response is `response()`)."""

    records: int = 0
    budgets: int = 0
    caught_up: int = 0
    queued: int = 0
    pending: dict[str, str] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    rebuilt: int = 0
    rebuild_failures: int = 0
    rebuilds_left: int = 0
    failures: list[str] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": item} for item in self.failures]}

    def as_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "budgets": self.budgets,
            "caught_up": self.caught_up,
            "queued": self.queued,
            "pending": sorted(self.pending),
            "skipped": dict(self.skipped),
            "malformed": self.malformed,
            "rebuilt": self.rebuilt,
            "rebuild_failures": self.rebuild_failures,
            "rebuilds_left": self.rebuilds_left,
            "batch_item_failures": self.failures,
        }


def read_batch(event_records: list[Any], report: BatchReport) -> dict[str, str]:
    """The distinct budgets the batch names, each with the sequence number of the earliest
    record naming it (batch order is shard order); skipped and malformed records are counted
    in `report`, malformed ones logged with their sequence number."""
    first: dict[str, str] = {}
    for record in event_records:
        report.records += 1
        try:
            change = records.change_of(record)
            if change.sequence_number is None:
                raise InvalidInput("record has no dynamodb.SequenceNumber")
        except InvalidInput as exc:
            report.malformed += 1
            log.warning(
                "skipping malformed stream record",
                sequence_number=_sequence_of(record),
                problem=str(exc),
            )
            continue
        if change.kind != records.EVENT or change.budget is None:
            report.skipped[change.kind] += 1
            continue
        first.setdefault(change.budget, change.sequence_number)
    return first


def earliest_unhandled(first: Mapping[str, str], pending: Mapping[str, str]) -> list[str]:
    """The one sequence number to report: the earliest record naming a pending budget."""
    order = list(first.values())  # insertion order = batch order
    seen = [first[b] for b in pending if b in first]
    return [min(seen, key=order.index)] if seen else []


def _sequence_of(record: Any) -> str | None:
    if isinstance(record, Mapping):
        dynamodb = record.get("dynamodb")
        if isinstance(dynamodb, Mapping) and isinstance(dynamodb.get("SequenceNumber"), str):
            return str(dynamodb["SequenceNumber"])
    return None


class StreamHandler:
    """One Lambda function's state across warm invocations: how budgets are caught up (the
    injected `catch_up_many`, e.g. `settle.per_budget(projector.catch_up, concurrency)`), the
    retry queue, and the snapshot rebuild with the slowest time it has taken so far."""

    def __init__(
        self,
        catch_up_many: settle.CatchUpMany,
        queue: settle.RetryQueue | None,
        rebuild: Callable[[str], Any] | None,
        *,
        catch_up: Callable[[str], Any] | None = None,
        reserve_millis: int = RESERVE_MILLIS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catch_up_many = catch_up_many
        self.queue = queue
        self.rebuild = rebuild
        # One budget's catch-up, for the retry queue's messages (defaults to catch_up_many).
        self.catch_up = catch_up
        self.reserve_millis = reserve_millis
        self.clock = clock
        self.slowest_rebuild_millis = FIRST_REBUILD_GUESS_MILLIS

    def __call__(self, event: Mapping[str, Any], context: Context) -> dict[str, Any]:
        try:
            event_records = event.get("Records")
            if not isinstance(event_records, list):
                log.error("not a stream or queue event: no Records list; nothing to do")
                return {"batchItemFailures": []}
            if event_records and _source(event_records[0]) == "aws:sqs":
                return self.handle_queue(event_records)
            report = self.handle_stream(event_records, context)
            return report.response()
        finally:
            metrics.current().flush()  # one EMF document per invocation, never per record

    # -- the stream --------------------------------------------------------------------------

    def handle_stream(self, event_records: list[Any], context: Context) -> BatchReport:
        report = BatchReport()
        first = read_batch(event_records, report)
        report.budgets = len(first)
        outcome = settle.settle(list(first), self.catch_up_many, self.queue, logger=log)
        report.caught_up, report.queued = len(outcome.caught_up), len(outcome.queued)
        report.pending = outcome.pending
        report.failures = earliest_unhandled(first, outcome.pending)
        figures = metrics.current()
        figures.count("StreamRecordsSkipped", sum(report.skipped.values()))
        figures.count("StreamRecordsMalformed", report.malformed)
        if report.failures:
            figures.count("CheckpointsHeld")
            log.error(
                "reporting a batch item failure: budgets neither caught up nor queued",
                pending=sorted(outcome.pending),
                held_at=report.failures[0],
            )
        self._rebuild_within(outcome.caught_up, context, report)
        log.info("lambda stream batch handled", **report.as_json())
        return report

    def _rebuild_within(self, budgets: list[str], context: Context, report: BatchReport) -> None:
        """Rebuild the caught-up budgets' snapshots while one more rebuild fits in the time
        left; what is left keeps its markers (I4) for a later batch or the sweep."""
        if self.rebuild is None:
            return
        for index, budget in enumerate(budgets):
            left = context.get_remaining_time_in_millis()
            if left < self.slowest_rebuild_millis + self.reserve_millis:
                report.rebuilds_left = len(budgets) - index
                log.warning(
                    "snapshot rebuilds left for later (markers kept)",
                    budgets=report.rebuilds_left,
                    remaining_millis=left,
                )
                return
            began = self.clock()
            try:
                self.rebuild(budget)
            except Exception as exc:
                report.rebuild_failures += 1
                log.warning("snapshot rebuild failed; markers kept", budget=budget, error=str(exc))
            else:
                report.rebuilt += 1
            took = int((self.clock() - began) * 1000)
            self.slowest_rebuild_millis = max(self.slowest_rebuild_millis, took)

    # -- the retry queue ---------------------------------------------------------------------

    def handle_queue(self, messages: list[Any]) -> dict[str, Any]:
        """SQS partial batch response: every message whose budget did not catch up (or whose
        body is malformed, so that it reaches the dead-letter queue) is reported by id."""
        failures: list[str] = []
        for message in messages:
            message_id = str(message.get("messageId", "")) if isinstance(message, Mapping) else ""
            try:
                budget = decode_queue_message(
                    message.get("body", "") if isinstance(message, Mapping) else ""
                )
            except InvalidInput as exc:
                log.error("malformed retry queue message", message_id=message_id, problem=str(exc))
                failures.append(message_id)
                continue
            try:
                self._catch_up_one(budget)
                if self.rebuild is not None:
                    self.rebuild(budget)
            except Exception as exc:
                log.warning("queued budget still failing", budget=budget, error=str(exc))
                failures.append(message_id)
                continue
            log.info("queued budget caught up", budget=budget)
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    def _catch_up_one(self, budget: str) -> None:
        if self.catch_up is not None:
            self.catch_up(budget)
            return
        [done] = list(self.catch_up_many([budget]))
        if done.error is not None:
            raise done.error


def _source(record: Any) -> str | None:
    if not isinstance(record, Mapping):
        return None
    source = record.get("eventSource")
    return str(source) if source is not None else None


def from_settings(settings: Settings) -> StreamHandler:
    """The production wiring: one DynamoDB client for every thread, the stream's batch-wide
    catch-up (`catch_ups.catch_up_budgets`: positions read together, budgets behind caught up
    `BUDGET_CONCURRENCY` at once, no head re-read since a later record names the budget
    again), the retry queue when configured."""
    from worker.engine import aws, catch_ups
    from worker.engine.projector import Projector
    from worker.engine.reads import Store
    from worker.engine.snapshots import Rebuilder
    from worker.stream.retry_queue import SqsRetryQueue

    store = Store.from_settings(aws.dynamodb(settings), settings)
    projector = Projector(store)
    queue = (
        SqsRetryQueue(aws.sqs(settings), settings.retry_queue_url)
        if settings.retry_queue_url
        else None
    )

    def catch_up_many(budgets: list[str]) -> Iterator[pool.Done[str, Any]]:
        return catch_ups.catch_up_budgets(
            store,
            budgets,
            catch_ups.keep,
            projector=projector,
            workers=settings.concurrency,
            follow_head=False,
        )

    return StreamHandler(
        catch_up_many,
        queue,
        Rebuilder(store).rebuild,
        catch_up=projector.catch_up,
    )


_default: StreamHandler | None = None
_default_lock = threading.Lock()


def handler(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    """Lambda's entry point. The first invocation of a container builds the handler from the
    environment (`BUDGET_*`, `AWS_REGION`) and configures JSON logs and EMF metrics (stdout,
    which Lambda ships to CloudWatch Logs); warm invocations reuse it."""
    global _default
    with _default_lock:
        if _default is None:
            logs.configure("info", json_lines=True)
            metrics.configure()
            _default = from_settings(Settings.from_env())
        current = _default
    return current(event, context)
