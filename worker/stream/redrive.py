"""`budget-worker redrive`: recovery from a Lambda on-failure destination message.

The message names a shard and a sequence range, not the records (`destination`). While the
stream still holds that range (24 hours), reading it again gives the budgets its records named,
and catching each up (then rebuilding its snapshots) does everything the discarded invocations
should have done: a record only ever meant "budget B changed". Records of any item of a budget
count here (head and alias items too), since naming one budget too many costs one no-op
catch-up. When the range is gone, nothing names those budgets any more: `NotRetained` says to
run the sweep (`catch-up --all`), which finds every budget that is behind without the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from worker import logs
from worker.engine import pool
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder
from worker.errors import InvalidInput
from worker.stream import records
from worker.stream.destination import BatchRange
from worker.stream.local_driver import stream_arn
from worker.stream.shard_reads import NotRetained, read_range

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

log = logs.get(__name__)

SWEEP_ADVICE = (
    "run the sweep, `budget-worker catch-up --all`: it finds every budget that is behind "
    "without the stream"
)


class RangeNotRetained(NotRetained):
    """The destination message's range is no longer in the stream; the message says what to do."""


@dataclass(slots=True)
class RedriveResult:
    shard_id: str
    records: int = 0
    budgets: list[str] = field(default_factory=list)
    caught_up: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "records": self.records,
            "budgets": self.budgets,
            "caught_up": self.caught_up,
            "failed": self.failed,
        }


def budgets_named(stream_records: list[dict[str, Any]]) -> list[str]:
    """Distinct budgets the records name, in stream order; malformed and foreign ones skipped."""
    found: dict[str, None] = {}
    for record in stream_records:
        try:
            change = records.change_of(record)
        except InvalidInput:
            continue
        if change.budget is not None and change.kind not in (records.FOREIGN,):
            found.setdefault(change.budget, None)
    return list(found)


def redrive(
    batch: BatchRange,
    store: Store,
    streams: DynamoDBStreamsClient,
    *,
    concurrency: int,
) -> RedriveResult:
    """Catch up (and rebuild) every budget named in the message's range, or RangeNotRetained."""
    arn = batch.stream_arn or stream_arn(store.client, store.events_table)
    try:
        found = read_range(streams, arn, batch.shard_id, batch.start, batch.end)
    except NotRetained as exc:
        raise RangeNotRetained(f"{exc}; {SWEEP_ADVICE}") from exc
    result = RedriveResult(batch.shard_id, records=len(found), budgets=budgets_named(found))
    projector, rebuilder = Projector(store), Rebuilder(store)

    def handle(budget: str) -> None:
        projector.catch_up(budget)
        rebuilder.rebuild(budget)

    for done in pool.run_all(handle, result.budgets, concurrency):
        if done.error is None:
            result.caught_up.append(done.item)
        else:
            result.failed.append({"budget": done.item, "error": str(done.error)})
            log.warning("redrive: catch-up failed", budget=done.item, error=str(done.error))
    result.caught_up.sort()
    log.info("redrive done", **result.as_json())
    return result
