"""The local stream driver: a single-process stand-in for KCL + the DynamoDB Streams adapter.

It reads the events table's stream (DescribeStream, parents before children, GetShardIterator,
GetRecords), hands records to the same record processor over the same MultiLang protocol
(spawning `budget-worker kcl-processor` per shard), and stores checkpoints in a lease table
with KCL's schema. One process owns every shard; it is meant for DynamoDB Local and tests, not
for scaling out (production runs KCL on ECS).

Crash safety comes from the processor's checkpoint rule: a shard restarts after its last
checkpoint, and re-reading records is harmless because catch-up is idempotent.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from worker import logs
from worker.config import ToolSettings
from worker.engine.failures import error_code
from worker.stream.leases import LATEST, SHARD_END, TRIM_HORIZON, LeaseTable
from worker.stream.multilang import ChildFailed, MultiLangChild, StreamRecord
from worker.stream.records import ADAPTER, GET_RECORDS, created_at, encode

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

log = logs.get(__name__)

PROCESSOR_COMMAND = [sys.executable, "-m", "worker", "kcl-processor"]


def to_stream_record(record: dict[str, Any]) -> StreamRecord:
    """A GetRecords record as the adapter hands it to KCL."""
    sequence = record["dynamodb"]["SequenceNumber"]
    created = created_at(record, GET_RECORDS)
    arrival = int(created * 1000) if created is not None else 0
    # The adapter uses the stream sequence number as the Kinesis partition key.
    return StreamRecord(encode(record, ADAPTER), sequence, sequence, arrival)


def stream_arn(client: DynamoDBClient, events_table: str) -> str:
    table = client.describe_table(TableName=events_table)["Table"]
    arn = table.get("LatestStreamArn")
    if not arn or not table.get("StreamSpecification", {}).get("StreamEnabled"):
        raise RuntimeError(f"table {events_table} has no stream enabled")
    return arn


def list_shards(streams: DynamoDBStreamsClient, arn: str) -> list[dict[str, Any]]:
    shards: list[dict[str, Any]] = []
    start: str | None = None
    while True:
        args: dict[str, Any] = {"StreamArn": arn}
        if start:
            args["ExclusiveStartShardId"] = start
        description = streams.describe_stream(**args)["StreamDescription"]
        shards.extend(description.get("Shards", []))  # type: ignore[arg-type]
        start = description.get("LastEvaluatedShardId")
        if not start:
            return shards


@dataclass(slots=True)
class DriverConfig:
    # An idle shard is polled as often as KCL polls it with properties/dynamodb-local.properties
    # (idleTimeBetweenReadsInMillis = 250): a 1 s pause alone put the end-to-end lag over 1 s.
    poll_seconds: float = 0.25
    failover_seconds: float = 10.0
    batch_limit: int = 1000
    owner: str = field(default_factory=lambda: f"local-{socket.gethostname()}-{os.getpid()}")
    processor_command: Sequence[str] = field(default_factory=lambda: list(PROCESSOR_COMMAND))
    processor_env: dict[str, str] | None = None

    @classmethod
    def from_env(cls) -> DriverConfig:
        """`BUDGET_POLL_SECONDS` and `BUDGET_LEASE_FAILOVER_SECONDS` tune the driver."""
        config, tools = cls(), ToolSettings.from_env()
        if tools.poll_seconds is not None:
            config.poll_seconds = tools.poll_seconds
        if tools.lease_failover_seconds is not None:
            config.failover_seconds = tools.lease_failover_seconds
        return config


class _Heartbeat(threading.Thread):
    """Renews a held lease every third of the failover time while a shard is consumed."""

    def __init__(self, leases: LeaseTable, shard_id: str, config: DriverConfig) -> None:
        super().__init__(name=f"heartbeat-{shard_id}", daemon=True)
        self.leases = leases
        self.shard_id = shard_id
        self.config = config
        self.lost = threading.Event()
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.config.failover_seconds / 3):
            try:
                if not self.leases.renew(self.shard_id, self.config.owner):
                    self.lost.set()
                    return
            except ClientError as exc:
                log.warning("lease renewal failed", shard_id=self.shard_id, error=error_code(exc))

    def stop(self) -> None:
        self._stopped.set()


class ShardConsumer(threading.Thread):
    """Feeds one shard to one child processor until the shard ends or the driver stops."""

    def __init__(
        self,
        shard_id: str,
        arn: str,
        streams: DynamoDBStreamsClient,
        leases: LeaseTable,
        config: DriverConfig,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"shard-{shard_id}", daemon=True)
        self.shard_id = shard_id
        self.arn = arn
        self.streams = streams
        self.leases = leases
        self.config = config
        self.stop = stop
        self.finished = False
        self.last_delivered: str | None = None
        self.log = log.bind(shard_id=shard_id)

    def run(self) -> None:
        while not self.stop.is_set() and not self.finished:
            child: MultiLangChild | None = None
            try:
                if not self.leases.take(
                    self.shard_id, self.config.owner, self.config.failover_seconds
                ):
                    self.log.info("lease held by another worker; waiting")
                    self.stop.wait(self.config.failover_seconds / 2)
                    continue
                child = MultiLangChild(self.config.processor_command, env=self.config.processor_env)
                self._consume(child)
            except ChildFailed as exc:
                self.log.error(
                    "record processor died; restarting from the last checkpoint", error=str(exc)
                )
                self.stop.wait(self.config.poll_seconds)
            except Exception as exc:
                self.log.exception("shard consumer failed; restarting", error=str(exc))
                self.stop.wait(self.config.poll_seconds)
            finally:
                if child is not None:
                    child.close()
        self.leases.release(self.shard_id, self.config.owner)

    def _consume(self, child: MultiLangChild) -> None:
        lease = self.leases.get(self.shard_id)
        checkpoint = lease.checkpoint if lease else TRIM_HORIZON
        if checkpoint == SHARD_END:
            self.finished = True
            return
        child.initialize(self.shard_id, checkpoint)
        self.last_delivered = None
        iterator = self._iterator(checkpoint)
        self.log.info("consuming shard", checkpoint=checkpoint, child_pid=child.pid)
        # Renew from a timer, not between batches: a long batch must not let the lease look
        # abandoned (to another driver, or to replay).
        heartbeat = _Heartbeat(self.leases, self.shard_id, self.config)
        heartbeat.start()
        try:
            self._feed(child, iterator, checkpoint, heartbeat)
        finally:
            heartbeat.stop()

    def _feed(
        self, child: MultiLangChild, iterator: str | None, checkpoint: str, heartbeat: _Heartbeat
    ) -> None:
        """Batches to the child until the shard ends, the lease is lost or the driver stops.
        While the child works on a batch, the next one is read (as KCL's polling reader
        prefetches): on a busy shard the GetRecords round trip, and the parsing of up to 1,000
        records, overlap the child's work instead of following it. At most one batch is read
        ahead; a batch read ahead that is not delivered (stop, lost lease) is only dropped:
        the checkpoint never covered it."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"read-{self.shard_id}") as ahead:
            self._feed_reading_ahead(child, iterator, checkpoint, heartbeat, ahead)

    def _get_records(self, iterator: str, limit: int | None = None) -> dict[str, Any]:
        limit = self.config.batch_limit if limit is None else limit
        return self.streams.get_records(ShardIterator=iterator, Limit=limit)  # type: ignore[return-value]

    def _feed_reading_ahead(
        self,
        child: MultiLangChild,
        iterator: str | None,
        checkpoint: str,
        heartbeat: _Heartbeat,
        ahead: ThreadPoolExecutor,
    ) -> None:
        next_batch: Future[dict[str, Any]] | None = None
        while True:
            if self.stop.is_set():
                child.shutdown_requested(self._on_checkpoint)
                return
            if heartbeat.lost.is_set():
                self.log.warning("lease lost")
                child.lease_lost()
                return
            if iterator is None:
                # As the MultiLangDaemon does: one shardEnded, then this child is done. If it
                # did not checkpoint SHARD_END (it exits when budgets stay pending), the shard
                # is consumed again from its last checkpoint by a new child.
                try:
                    child.shard_ended(self._on_shard_end)
                except ChildFailed as exc:
                    self.log.warning("processor did not finish the shard", error=str(exc))
                lease = self.leases.get(self.shard_id)
                if lease is not None and lease.checkpoint == SHARD_END:
                    self.log.info("shard finished")
                    self.finished = True
                return
            try:
                reading, next_batch = next_batch, None
                response = reading.result() if reading else self._get_records(iterator)
            except ClientError as exc:
                iterator = self._recover_iterator(exc, checkpoint)
                continue
            records = [to_stream_record(r) for r in response.get("Records", [])]
            iterator = response.get("NextShardIterator")
            if reading is not None and records and iterator is not None:
                records, iterator = self._top_up(records, iterator)
                if self.stop.is_set() or heartbeat.lost.is_set():
                    continue  # the top-up took a round trip: stop or hand over, undelivered
            if records:
                if iterator is not None:
                    next_batch = ahead.submit(self._get_records, iterator)
                # A checkpoint without a sequence number covers this batch (as in KCL).
                self.last_delivered = records[-1].sequence_number
                child.process_records(records, 0, self._on_checkpoint)
            elif iterator is not None and reading is None:
                # Only a fresh empty read means an idle shard. A read ahead was sent when the
                # previous batch went to the child, so its emptiness is as old as that batch's
                # work: pausing on it would add a poll interval to every batch of a trickle.
                self.stop.wait(self.config.poll_seconds)

    def _top_up(
        self, records: list[StreamRecord], iterator: str
    ) -> tuple[list[StreamRecord], str | None]:
        """A batch read ahead is as old as the start of the child's previous batch: on a
        shard that keeps up, it holds what arrived before that batch, and what arrived during
        it would wait for the batch after. Read once more from where it ends, so a batch holds
        everything up to the moment it is delivered: the read-ahead keeps its gain on a
        backlog (full batches are delivered as read) and costs a trickle one round trip per
        batch instead of one batch's work in lag. A read cut short by GetRecords' 1 MB limit
        is topped up too (a bigger batch, one serial read more). A failed top-up delivers what
        was read; the next read, from the same iterator, meets or outlives the error as any
        read does."""
        room = self.config.batch_limit - len(records)
        if room <= 0:
            return records, iterator
        try:
            more = self._get_records(iterator, room)
        except (ClientError, BotoCoreError) as exc:
            self.log.info(
                "top-up read failed; delivering the batch read ahead", error=error_code(exc)
            )
            return records, iterator
        return (
            records + [to_stream_record(r) for r in more.get("Records", [])],
            more.get("NextShardIterator"),
        )

    def _iterator(self, checkpoint: str) -> str | None:
        args: dict[str, Any] = {"StreamArn": self.arn, "ShardId": self.shard_id}
        if checkpoint in (TRIM_HORIZON, LATEST):
            args["ShardIteratorType"] = checkpoint
        else:
            args["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            args["SequenceNumber"] = checkpoint
        try:
            return self.streams.get_shard_iterator(**args).get("ShardIterator")
        except ClientError as exc:
            if error_code(exc) == "TrimmedDataAccessException":
                self.log.error(
                    "checkpoint is older than the stream's retention; records "
                    "were lost to the stream, starting at the trim horizon",
                    checkpoint=checkpoint,
                )
                return self.streams.get_shard_iterator(
                    StreamArn=self.arn, ShardId=self.shard_id, ShardIteratorType="TRIM_HORIZON"
                ).get("ShardIterator")
            raise

    def _recover_iterator(self, exc: ClientError, checkpoint: str) -> str | None:
        code = error_code(exc)
        if code == "ExpiredIteratorException":
            self.log.info("shard iterator expired; renewing")
            return self._iterator(self.last_delivered or checkpoint)
        if code in {
            "LimitExceededException",
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
        }:
            self.stop.wait(self.config.poll_seconds)
            return self._iterator(self.last_delivered or checkpoint)
        raise exc

    def _on_checkpoint(self, sequence: str | None, sub: int | None) -> str | None:
        target = sequence or self.last_delivered
        if target is None:
            return None  # nothing delivered yet: nothing to record
        return self._store(target, sub or 0)

    def _on_shard_end(self, sequence: str | None, sub: int | None) -> str | None:
        return self._store(sequence or SHARD_END, sub or 0)

    def _store(self, target: str, sub: int) -> str | None:
        try:
            if not self.leases.checkpoint(self.shard_id, self.config.owner, target, sub):
                return "ShutdownException"
        except ClientError as exc:
            self.log.warning("checkpoint write failed", error=error_code(exc))
            return "KinesisClientLibDependencyException"
        self.log.debug("checkpoint stored", checkpoint=target)
        return None


class LocalDriver:
    def __init__(
        self,
        client: DynamoDBClient,
        streams: DynamoDBStreamsClient,
        events_table: str,
        lease_table: str,
        config: DriverConfig | None = None,
    ) -> None:
        self.client = client
        self.streams = streams
        self.events_table = events_table
        self.leases = LeaseTable(client, lease_table)
        self.config = config or DriverConfig()
        self.consumers: dict[str, threading.Thread] = {}

    def run(self, stop: threading.Event, on_cycle: Callable[[], None] | None = None) -> None:
        self.leases.create()
        arn = stream_arn(self.client, self.events_table)
        log.info("local stream driver started", stream_arn=arn, owner=self.config.owner)
        try:
            while not stop.is_set():
                try:
                    self._cycle(arn, stop)
                except ClientError as exc:
                    log.warning("stream poll failed", error=error_code(exc))
                if on_cycle is not None:
                    on_cycle()
                stop.wait(self.config.poll_seconds)
        finally:
            stop.set()
            for consumer in self.consumers.values():
                consumer.join(timeout=60)
            log.info("local stream driver stopped")

    def _cycle(self, arn: str, stop: threading.Event) -> None:
        shards = list_shards(self.streams, arn)
        for shard in shards:
            parent = shard.get("ParentShardId")
            self.leases.ensure(shard["ShardId"], [parent] if parent else [])
        leases = {lease.shard_id: lease for lease in self.leases.all()}
        known = {shard["ShardId"] for shard in shards}
        for shard in shards:
            shard_id = shard["ShardId"]
            consumer = self.consumers.get(shard_id)
            if consumer is not None and consumer.is_alive():
                continue
            lease = leases.get(shard_id)
            if lease is None or lease.checkpoint == SHARD_END:
                continue
            # Parents first: a child starts only once every parent still in the stream ended.
            if any(
                p in known and leases.get(p) is not None and leases[p].checkpoint != SHARD_END
                for p in lease.parents
            ):
                continue
            consumer = self._consumer(shard_id, arn, stop)
            self.consumers[shard_id] = consumer
            consumer.start()

    def _consumer(self, shard_id: str, arn: str, stop: threading.Event) -> threading.Thread:
        """The thread that consumes one shard (the Lambda-shaped driver supplies its own)."""
        return ShardConsumer(shard_id, arn, self.streams, self.leases, self.config, stop)
