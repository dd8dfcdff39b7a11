"""The local driver's shard consumer reads the next batch while the child works on one.

With fakes for the stream and the child (the end-to-end tests in test_local_driver.py run the
real ones): every record is delivered once and in order whatever the read-ahead does; the next
GetRecords is under way before the child has answered the batch before it (an event the fake
child waits for, so the order is asserted, not timed); a read ahead that fails is renewed from
after the last record delivered; a batch read ahead when the driver stops is never delivered,
and the checkpoint is never past what the child saw.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

from worker.stream.local_driver import DriverConfig, ShardConsumer
from worker.stream.records import stream_record


class FakeStream:
    """One shard of `count` records, read `page` at a time. An iterator is the index of the
    next record ("at-3"); the shard is closed, so the last page has no next iterator."""

    def __init__(self, count: int, page: int = 2) -> None:
        self.records = [
            stream_record(f"b{n % 3}", f"E#{n:04d}", sequence=1000 + n) for n in range(count)
        ]
        self.page = page
        self.reads: list[int] = []
        self.read_started = threading.Event()
        self.expire_at: set[int] = set()  # these reads fail once with ExpiredIteratorException
        self.lock = threading.Lock()

    def get_records(self, **args: Any) -> dict[str, Any]:
        at = int(args["ShardIterator"].removeprefix("at-"))
        with self.lock:
            self.reads.append(at)
            self.read_started.set()
            if at in self.expire_at:
                self.expire_at.discard(at)
                raise ClientError(
                    {"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}},
                    "GetRecords",
                )
        end = at + self.page
        return {
            "Records": self.records[at:end],
            "NextShardIterator": f"at-{end}" if end < len(self.records) else None,
        }

    def get_shard_iterator(self, **args: Any) -> dict[str, Any]:
        assert args["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
        return {"ShardIterator": f"at-{int(args['SequenceNumber']) - 1000 + 1}"}


class FakeChild:
    """Records what it is handed. For each batch but the last it waits (bounded) until the
    stream has seen the read of the page that follows: only the read-ahead can have made it
    before this call returns."""

    def __init__(self, stream: FakeStream, stop: threading.Event, stop_after: int | None = None):
        self.stream = stream
        self.stop = stop
        self.stop_after = stop_after
        self.delivered: list[str] = []
        self.read_ahead_seen: list[bool] = []
        self.ended = self.shut_down = False

    def process_records(self, records: list[Any], _millis: int, on_checkpoint: Any) -> None:
        self.delivered += [r.sequence_number for r in records]
        following = int(records[-1].sequence_number) - 1000 + 1  # where the next page starts
        if following < len(self.stream.records):
            seen = False
            for _ in range(300):  # bounded: up to 30 s for the read-ahead to begin
                with self.stream.lock:
                    seen = following in self.stream.reads
                    self.stream.read_started.clear()
                if seen:
                    break
                self.stream.read_started.wait(0.1)
            self.read_ahead_seen.append(seen)
        assert on_checkpoint(None, None) is None
        if self.stop_after is not None and len(self.delivered) >= self.stop_after:
            self.stop.set()

    def shard_ended(self, on_checkpoint: Any) -> None:
        self.ended = True
        on_checkpoint(None, None)

    def shutdown_requested(self, on_checkpoint: Any) -> None:
        self.shut_down = True
        on_checkpoint(None, None)

    def lease_lost(self) -> None:
        raise AssertionError("the lease was not lost")


class FakeLeases:
    def __init__(self) -> None:
        self.checkpoints: list[str] = []

    def checkpoint(self, shard_id: str, owner: str, target: str, sub: int) -> bool:
        self.checkpoints.append(target)
        return True

    def get(self, shard_id: str) -> Any:
        return None


class NotLost:
    lost = threading.Event()


def consume(stream: FakeStream, stop_after: int | None = None) -> tuple[FakeChild, FakeLeases]:
    stop = threading.Event()
    leases = FakeLeases()
    consumer = ShardConsumer("shard-1", "arn", stream, leases, DriverConfig(), stop)  # type: ignore[arg-type]
    child = FakeChild(stream, stop, stop_after)
    consumer._feed(child, "at-0", "TRIM_HORIZON", NotLost())  # type: ignore[arg-type]
    return child, leases


def test_every_record_once_in_order_with_the_next_batch_read_while_the_child_works() -> None:
    stream = FakeStream(count=9, page=2)
    child, leases = consume(stream)
    assert child.delivered == [str(1000 + n) for n in range(9)]
    assert child.read_ahead_seen == [True] * 4  # 5 batches: each but the last overlapped a read
    assert stream.reads == [0, 2, 4, 6, 8]  # each page read once
    assert child.ended and leases.checkpoints[-1] == "SHARD_END"
    assert leases.checkpoints[:-1] == ["1001", "1003", "1005", "1007", "1008"]


def test_a_read_ahead_that_fails_is_renewed_after_the_last_record_delivered() -> None:
    stream = FakeStream(count=6, page=2)
    stream.expire_at = {2}
    child, _ = consume(stream)
    assert child.delivered == [str(1000 + n) for n in range(6)]
    assert stream.reads == [0, 2, 2, 4]


def test_a_batch_read_ahead_when_the_driver_stops_is_dropped_not_delivered() -> None:
    stream = FakeStream(count=9, page=2)
    child, leases = consume(stream, stop_after=4)
    assert child.delivered == ["1000", "1001", "1002", "1003"]
    assert stream.reads == [0, 2, 4]  # the third page was read ahead, then dropped
    assert child.shut_down and not child.ended
    assert leases.checkpoints == ["1001", "1003", "1003"]


class TrickleStream(FakeStream):
    """An open shard fed slowly: the read ahead of the second record comes back empty (the
    record was written after it), and the read after that finds it; then the shard closes."""

    def __init__(self) -> None:
        super().__init__(count=2)
        self.answers = [
            (self.records[:1], "at-1"),
            ([], "at-1"),  # the read ahead, sent while the child had the first record
            (self.records[1:], None),
        ]

    def get_records(self, **args: Any) -> dict[str, Any]:
        with self.lock:
            self.reads.append(int(args["ShardIterator"].removeprefix("at-")))
            self.read_started.set()
            records, following = self.answers.pop(0)
        return {"Records": records, "NextShardIterator": following}


class CountedStop(threading.Event):
    """The driver's stop event, recording each pause instead of sleeping through it."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses.append(timeout)
        return self.is_set()


def test_an_empty_read_ahead_is_read_again_at_once_not_after_a_poll_pause() -> None:
    """Its emptiness is as old as the batch the child just worked on; pausing a poll interval
    on it put that interval into every batch of a steady trickle (the lag benchmark)."""
    stream = TrickleStream()
    stop = CountedStop()
    leases = FakeLeases()
    consumer = ShardConsumer("shard-1", "arn", stream, leases, DriverConfig(), stop)  # type: ignore[arg-type]
    child = FakeChild(stream, stop)
    consumer._feed(child, "at-0", "TRIM_HORIZON", NotLost())  # type: ignore[arg-type]
    assert child.delivered == ["1000", "1001"]
    assert stream.reads == [0, 1, 1]
    assert stop.pauses == []  # no poll pause: the only empty answer was a read ahead
    assert child.ended and leases.checkpoints[-1] == "SHARD_END"
