"""`budget-worker replay`: rewind stream checkpoints so the worker re-reads the stream.

Re-reading is harmless by design: a stream record only names a budget, and catching up a
budget that is current changes nothing. Replay refuses while a lease is held by a live worker
(it would overwrite checkpoints under it) unless `--force`.
It works on both lease tables: the local driver's and the one KCL 3 writes (same key and
checkpoint attributes; KCL's liveness is judged by watching its lease counter, `live_leases`).

DynamoDB Streams has no timestamp iterator that DynamoDB Local serves, so `--at-timestamp` is
resolved per shard by reading it from the trim horizon to the first record at or after the
timestamp; the checkpoint becomes the record just before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from worker import logs
from worker.errors import InvalidInput
from worker.stream.leases import SHARD_END, TRIM_HORIZON, Lease, LeaseTable
from worker.stream.local_driver import list_shards, stream_arn
from worker.stream.records import GET_RECORDS, created_at

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

log = logs.get(__name__)


class LeasesLive(InvalidInput):
    """A worker holds leases; rewinding under it would be overwritten or race it."""


@dataclass(frozen=True, slots=True)
class Target:
    """Exactly one of the three positions."""

    trim_horizon: bool = False
    at_timestamp: datetime | None = None
    after_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class ShardReset:
    shard_id: str
    old: str | None
    new: str

    def as_json(self) -> dict[str, Any]:
        return {"shard_id": self.shard_id, "old": self.old, "new": self.new}


def parse_timestamp(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--at-timestamp {raw!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise InvalidInput(f"--at-timestamp {raw!r} needs a time zone (e.g. Z or +00:00)")
    return value


def parse_sequence(raw: str) -> str:
    if not raw.isdigit():
        raise InvalidInput(f"--after-sequence {raw!r} is not a stream sequence number")
    return raw


def _in_range(shard: dict[str, Any], sequence: int) -> bool:
    bounds = shard.get("SequenceNumberRange", {})
    start = int(bounds.get("StartingSequenceNumber", "0"))
    end = bounds.get("EndingSequenceNumber")
    return start <= sequence and (end is None or sequence <= int(end))


def _same_width(sequence: str, shard: dict[str, Any]) -> str:
    """DynamoDB Local writes sequence numbers zero-padded; match the shard's width so the
    checkpoint compares and resumes like one it wrote itself."""
    start = shard.get("SequenceNumberRange", {}).get("StartingSequenceNumber", "")
    if start.startswith("0") and len(sequence) < len(start):
        return sequence.zfill(len(start))
    return sequence


def _checkpoint_before(
    streams: DynamoDBStreamsClient, arn: str, shard: dict[str, Any], moment: datetime
) -> str:
    """The checkpoint that makes a shard resume at its first record at/after `moment`.
    Stream times are whole seconds (DynamoDB Local: whole minutes), so compare against the
    moment rounded down to the minute: re-reading a little more is harmless, skipping is
    not."""
    moment = moment.replace(second=0, microsecond=0)
    iterator: str | None = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    ).get("ShardIterator")
    previous: str | None = None
    empty_polls = 0
    while iterator is not None:
        response = streams.get_records(ShardIterator=iterator, Limit=1000)
        records = response.get("Records", [])
        for record in records:
            created = created_at(record, GET_RECORDS)
            if created is not None and created >= moment.timestamp():
                return previous or TRIM_HORIZON
            previous = record["dynamodb"]["SequenceNumber"]
        iterator = response.get("NextShardIterator")
        empty_polls = empty_polls + 1 if not records else 0
        if empty_polls >= 2:  # an open shard read to its current end
            break
    if iterator is None and "EndingSequenceNumber" in shard.get("SequenceNumberRange", {}):
        return SHARD_END  # a closed shard with nothing at or after the moment
    return previous or TRIM_HORIZON


def live_leases(
    leases: LeaseTable,
    candidates: list[Lease],
    failover_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Lease]:
    """The leases a running worker holds. A local lease says so by its heartbeat. A KCL lease
    cannot: KCL 3 leaves `leaseOwner` set when its worker stops (gracefully too) and stores no
    time, so an owner alone does not mean a live worker (taking it as one made replay refuse
    after every clean stop). A live KCL worker renews its leases every third of the failover
    time by bumping `leaseCounter`, so watch the counters for one failover time, as KCL's own
    lease taker does: a lease whose counter or owner moved is live; one that stood still has no
    running owner."""
    now = time.time()
    live = [
        lease
        for lease in candidates
        if lease.heartbeat is not None and lease.is_live(now, failover_seconds)
    ]
    watched = [lease for lease in candidates if lease.heartbeat is None and lease.owner]
    if watched:
        log.info(
            "watching KCL lease counters to tell a running worker from a stopped one",
            shards=[lease.shard_id for lease in watched],
            seconds=failover_seconds,
        )
        sleep(failover_seconds)
        for lease in watched:
            again = leases.get(lease.shard_id)
            if (
                again is not None
                and again.owner is not None
                and (again.counter != lease.counter or again.owner != lease.owner)
            ):
                live.append(again)
    return live


def replay(
    client: DynamoDBClient,
    streams: DynamoDBStreamsClient,
    events_table: str,
    lease_table: str,
    target: Target,
    *,
    shard_id: str | None = None,
    force: bool = False,
    failover_seconds: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ShardReset]:
    leases = LeaseTable(client, lease_table)
    leases.create()
    arn = stream_arn(client, events_table)
    shards = list_shards(streams, arn)
    if shard_id is not None:
        shards = [s for s in shards if s["ShardId"] == shard_id]
        if not shards:
            raise InvalidInput(f"shard {shard_id} is not in the stream of {events_table}")
    if target.after_sequence is not None:
        number = int(target.after_sequence)
        shards = [s for s in shards if _in_range(s, number)]
        if not shards:
            raise InvalidInput(f"no shard contains sequence number {target.after_sequence}")
        if len(shards) > 1:
            # Sequence numbers are only ordered within a shard: name the one that holds it.
            names = ", ".join(s["ShardId"] for s in shards)
            raise InvalidInput(
                f"sequence number {target.after_sequence} falls in the range of "
                f"several shards ({names}); choose one with --shard"
            )
    current = {lease.shard_id: lease for lease in leases.all()}
    live = live_leases(
        leases,
        [current[s["ShardId"]] for s in shards if s["ShardId"] in current],
        failover_seconds,
        sleep,
    )
    if live and not force:
        owners = ", ".join(sorted({lease.owner or "?" for lease in live}))
        raise LeasesLive(
            f"refusing to replay: {len(live)} lease(s) held by a running worker ({owners}); "
            "stop it first or pass --force"
        )
    resets = []
    for shard in shards:
        sid = shard["ShardId"]
        if target.trim_horizon:
            new = TRIM_HORIZON
        elif target.after_sequence is not None:
            new = _same_width(target.after_sequence, shard)
        else:
            assert target.at_timestamp is not None
            new = _checkpoint_before(streams, arn, shard, target.at_timestamp)
        old = current[sid].checkpoint if sid in current else None
        parent = shard.get("ParentShardId")
        leases.ensure(sid, [parent] if parent else [], initial=new)
        leases.reset(sid, new)
        log.info("checkpoint reset", shard_id=sid, old=old, new=new, forced=bool(live))
        resets.append(ShardReset(sid, old, new))
    return resets
