"""`run --driver lambda`: DynamoDB Local's stream fed to the Lambda handler, in Lambda's event
shape, with the event source mapping's (ESM's) semantics, so the Lambda path can be run and
tested on one machine with genuine stream records.

What it reproduces of an ESM on a DynamoDB stream, per shard (parents before children, as the
local driver):
- **batches**: up to `batch_size` records, or fewer once `batching_window` seconds have passed
  since the first one waiting (0: whatever one GetRecords brought), or at the shard's end;
- **partial batch response** (ReportBatchItemFailures): the checkpoint moves to just before the
  reported record, and the rest of the batch is retried from it;
- **retries**: at most `max_retry_attempts` (-1: until the records are too old), and
  `max_record_age` seconds (-1: no limit); then the batch is discarded and its on-failure
  destination message (`destination.failure_message`) written to `on_failure_dir` (or logged),
  and the checkpoint moves past it, as Lambda does;
- **bisect on a raised error** (BisectBatchOnFunctionError): the batch is split in halves, each
  retried in order; splitting does not count as a retry.
Not reproduced: ParallelizationFactor (one invocation per shard at a time here; the handler's
safety under concurrent invocations is tested directly), tumbling windows, and killing an
invocation at its timeout (the context only reports the time left).

The handler is invoked in this process, like a warm container: the same `StreamHandler` for
every invocation. Checkpoints live in the lease table with the local driver's schema, so a
restart resumes after the last one.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from worker import logs
from worker.config import ToolSettings
from worker.stream import destination
from worker.stream.lambda_handler import StreamHandler
from worker.stream.leases import SHARD_END, TRIM_HORIZON, LeaseTable
from worker.stream.local_driver import DriverConfig, LocalDriver, ShardConsumer, _Heartbeat
from worker.stream.records import LAMBDA, created_at, encode

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

log = logs.get(__name__)

Batch = list[dict[str, Any]]
Invoke = Callable[[Batch], Mapping[str, Any]]


@dataclass(slots=True)
class EsmConfig:
    """The event source mapping's settings (infra/budget-worker.yaml declares the same)."""

    batch_size: int = 100
    batching_window: float = 0.0
    max_retry_attempts: int = 3
    max_record_age: float = 3600.0
    bisect: bool = True
    # The function's timeout: what `get_remaining_time_in_millis` counts down from.
    timeout: float = 60.0
    retry_delay: float = 0.5
    on_failure_dir: Path | None = None
    function_arn: str = "local"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EsmConfig:
        """`BUDGET_LAMBDA_BATCH_SIZE`, `_BATCHING_WINDOW`, `_MAX_RETRIES`, `_MAX_RECORD_AGE`,
        `_BISECT` (1/0), `_TIMEOUT`, `_RETRY_DELAY` and `_ON_FAILURE_DIR` tune the driver."""
        env = ToolSettings.from_env().lambda_esm if env is None else env
        config = cls()

        def number(name: str) -> float | None:
            value = env.get(f"BUDGET_LAMBDA_{name}")
            return float(value) if value else None

        if (size := number("BATCH_SIZE")) is not None:
            config.batch_size = max(1, int(size))
        if (window := number("BATCHING_WINDOW")) is not None:
            config.batching_window = window
        if (retries := number("MAX_RETRIES")) is not None:
            config.max_retry_attempts = int(retries)
        if (age := number("MAX_RECORD_AGE")) is not None:
            config.max_record_age = age
        if (timeout := number("TIMEOUT")) is not None:
            config.timeout = timeout
        if (delay := number("RETRY_DELAY")) is not None:
            config.retry_delay = delay
        if env.get("BUDGET_LAMBDA_BISECT"):
            config.bisect = env["BUDGET_LAMBDA_BISECT"].lower() not in ("0", "false", "no")
        if env.get("BUDGET_LAMBDA_ON_FAILURE_DIR"):
            config.on_failure_dir = Path(env["BUDGET_LAMBDA_ON_FAILURE_DIR"])
        return config


@dataclass(slots=True)
class Deadline:
    """A Lambda context for an in-process invocation: the time left until `timeout`."""

    timeout: float
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout - time.monotonic()) * 1000))


def _sequence(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def _failed_index(response: Any, batch: Sequence[Mapping[str, Any]]) -> int | None:
    """Where the retry starts: None if the batch succeeded; the lowest reported record's index;
    0 for a response Lambda would take as a whole-batch failure (an identifier that is empty,
    missing or not in the batch)."""
    if not isinstance(response, Mapping):
        return None  # a null or non-object response counts as success, as in Lambda
    failures = response.get("batchItemFailures")
    if not failures:
        return None
    positions = {_sequence(r): i for i, r in enumerate(batch)}
    found: list[int] = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return 0
        found.append(positions[identifier])
    return min(found)


@dataclass(slots=True)
class Delivery:
    """What delivering one batch took."""

    invocations: int = 0
    retries: int = 0
    bisections: int = 0
    discarded: int = 0  # records sent to the on-failure destination
    stopped: bool = False


def deliver(
    batch: Batch,
    invoke: Invoke,
    config: EsmConfig,
    *,
    commit: Callable[[str], None],
    discard: Callable[[Batch, str, int, str | None], None],
    wait: Callable[[float], bool],
    now: Callable[[], float] = time.time,
) -> Delivery:
    """Deliver one batch with the ESM's semantics: `commit(sequence)` moves the checkpoint,
    `discard(records, condition, invoke_count, function_error)` gives records up to the
    on-failure destination, `wait(seconds)` pauses before a retry and says whether to stop
    (then nothing further is committed: the records are read again after a restart)."""
    done = Delivery()
    work: deque[tuple[Batch, int]] = deque([(batch, 0)])
    while work:
        records, retries = work.popleft()
        done.invocations += 1
        try:
            failed_at = _failed_index(invoke(records), records)
            function_error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("function error", error=error, records=len(records))
            function_error = "Unhandled"
            if config.bisect and len(records) > 1:
                middle = len(records) // 2
                work.appendleft((records[middle:], retries))
                work.appendleft((records[:middle], retries))
                done.bisections += 1
                continue
            failed_at = 0
        if failed_at is None:
            commit(_sequence(records[-1]))
            continue
        if failed_at > 0:
            commit(_sequence(records[failed_at - 1]))
        rest = records[failed_at:]
        oldest = min(created_at(r, LAMBDA) or 0.0 for r in rest)
        too_old = config.max_record_age >= 0 and now() - oldest > config.max_record_age
        exhausted = 0 <= config.max_retry_attempts <= retries
        if too_old or exhausted:
            condition = destination.RECORD_TOO_OLD if too_old else destination.RETRIES_EXHAUSTED
            discard(rest, condition, retries + 1, function_error)
            done.discarded += len(rest)
            commit(_sequence(rest[-1]))
            continue
        if wait(config.retry_delay):
            done.stopped = True
            return done
        done.retries += 1
        work.appendleft((rest, retries + 1))
    return done


class LambdaShardConsumer(ShardConsumer):
    """One shard, polled as an ESM polls it, its batches handed to the handler in-process."""

    def __init__(
        self,
        shard_id: str,
        arn: str,
        streams: DynamoDBStreamsClient,
        leases: LeaseTable,
        config: DriverConfig,
        stop: threading.Event,
        esm: EsmConfig,
        handler: StreamHandler,
    ) -> None:
        super().__init__(shard_id, arn, streams, leases, config, stop)
        self.esm = esm
        self.handler = handler

    def run(self) -> None:
        while not self.stop.is_set() and not self.finished:
            try:
                if not self.leases.take(
                    self.shard_id, self.config.owner, self.config.failover_seconds
                ):
                    self.stop.wait(self.config.failover_seconds / 2)
                    continue
                self._poll()
            except Exception as exc:
                self.log.exception("shard poller failed; restarting", error=str(exc))
                self.stop.wait(self.config.poll_seconds)
        self.leases.release(self.shard_id, self.config.owner)

    def _poll(self) -> None:
        lease = self.leases.get(self.shard_id)
        checkpoint = lease.checkpoint if lease else TRIM_HORIZON
        if checkpoint == SHARD_END:
            self.finished = True
            return
        iterator = self._iterator(checkpoint)
        self.last_delivered = None
        self.log.info("polling shard for the Lambda handler", checkpoint=checkpoint)
        heartbeat = _Heartbeat(self.leases, self.shard_id, self.config)
        heartbeat.start()
        try:
            self._loop(iterator, checkpoint, heartbeat)
        finally:
            heartbeat.stop()

    def _loop(self, iterator: str | None, checkpoint: str, heartbeat: _Heartbeat) -> None:
        waiting: Batch = []
        first_waiting: float | None = None
        while not self.stop.is_set():
            if heartbeat.lost.is_set():
                self.log.warning("lease lost")
                return
            fetched = 0
            if iterator is not None and len(waiting) < self.esm.batch_size:
                try:
                    response = self.streams.get_records(
                        ShardIterator=iterator, Limit=min(1000, self.esm.batch_size)
                    )
                except ClientError as exc:
                    iterator = self._recover_iterator(exc, checkpoint)
                    continue
                found = response.get("Records", [])
                fetched = len(found)
                if found:
                    waiting.extend(encode(r, LAMBDA, stream_arn=self.arn) for r in found)
                    self.last_delivered = waiting[-1]["dynamodb"]["SequenceNumber"]
                    first_waiting = first_waiting or time.monotonic()
                iterator = response.get("NextShardIterator")
            full = len(waiting) >= self.esm.batch_size
            window_over = (
                first_waiting is not None
                and time.monotonic() - first_waiting >= self.esm.batching_window
            )
            if waiting and (full or iterator is None or window_over):
                batch, waiting = waiting[: self.esm.batch_size], waiting[self.esm.batch_size :]
                first_waiting = time.monotonic() if waiting else None
                if self._deliver(batch).stopped:
                    return
                continue
            if iterator is None and not waiting:
                if self._store(SHARD_END, 0) is None:
                    self.log.info("shard finished")
                    self.finished = True
                return
            if not fetched:
                self.stop.wait(self.config.poll_seconds)

    def _deliver(self, batch: Batch) -> Delivery:
        def invoke(records: Batch) -> Mapping[str, Any]:
            return self.handler({"Records": records}, Deadline(self.esm.timeout))

        def commit(sequence: str) -> None:
            if self._store(sequence, 0) is not None:
                raise RuntimeError("lease lost while checkpointing")

        done = deliver(
            batch, invoke, self.esm, commit=commit, discard=self._discard, wait=self.stop.wait
        )
        if done.retries or done.bisections or done.discarded:
            self.log.info(
                "batch delivered",
                records=len(batch),
                invocations=done.invocations,
                retries=done.retries,
                bisections=done.bisections,
                discarded=done.discarded,
            )
        return done

    def _discard(
        self, records: Batch, condition: str, invoke_count: int, function_error: str | None
    ) -> None:
        message = destination.failure_message(
            shard_id=self.shard_id,
            stream_arn=self.arn,
            records=records,
            condition=condition,
            invoke_count=invoke_count,
            function_error=function_error,
            function_arn=self.esm.function_arn,
        )
        where = None
        if self.esm.on_failure_dir is not None:
            self.esm.on_failure_dir.mkdir(parents=True, exist_ok=True)
            path = self.esm.on_failure_dir / f"{self.shard_id}-{_sequence(records[0])}.json"
            path.write_text(json.dumps(message, indent=2) + "\n")
            where = str(path)
        self.log.error(
            "batch discarded to the on-failure destination; run `budget-worker redrive` on it",
            condition=condition,
            records=len(records),
            file=where,
            message=None if where else message,
        )


class LambdaDriver(LocalDriver):
    """The local driver's shard discovery and leases, with Lambda-shaped shard pollers."""

    def __init__(
        self,
        client: DynamoDBClient,
        streams: DynamoDBStreamsClient,
        events_table: str,
        lease_table: str,
        handler: StreamHandler,
        esm: EsmConfig | None = None,
        config: DriverConfig | None = None,
    ) -> None:
        super().__init__(client, streams, events_table, lease_table, config)
        self.handler = handler
        self.esm = esm or EsmConfig()

    def _consumer(self, shard_id: str, arn: str, stop: threading.Event) -> threading.Thread:
        return LambdaShardConsumer(
            shard_id, arn, self.streams, self.leases, self.config, stop, self.esm, self.handler
        )
