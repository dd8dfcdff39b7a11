"""The local driver's shard consumer reads the next batch while the child works on one.

With fakes for the stream and the child (the end-to-end tests in test_local_driver.py run the
real ones): every record is delivered once and in order whatever the read-ahead does; the next
GetRecords is under way before the child has answered the batch before it (an event the fake
child waits for, so the order is asserted, not timed); a read ahead that fails is renewed from
after the last record delivered; a batch read ahead when the driver stops is never delivered,
and the checkpoint is never past what the child saw. On a shard that keeps up, a batch read
ahead is topped up with what arrived while the child worked before it is delivered.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

from worker.stream.local_driver import DriverConfig, ShardConsumer
from worker.stream.records import stream_record

EXPIRED = ClientError(
    {"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}, "GetRecords"
)


class FakeStream:
    """One shard of `count` records, read `page` at a time (or fewer: the read's Limit). An
    iterator is the index of the next record ("at-3"); the shard is closed, so the last page
    has no next iterator."""

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
                raise EXPIRED
        end = at + min(self.page, args["Limit"])
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
        self.batches: list[list[str]] = []
        self.read_ahead_seen: list[bool] = []
        self.ended = self.shut_down = False

    def process_records(self, records: list[Any], _millis: int, on_checkpoint: Any) -> None:
        self.delivered += [r.sequence_number for r in records]
        self.batches.append([r.sequence_number for r in records])
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


def feed(
    stream: FakeStream, stop: threading.Event, batch_limit: int, stop_after: int | None = None
) -> tuple[FakeChild, FakeLeases]:
    """The shard fed from its start to a FakeChild until it ends or `stop` is set."""
    leases = FakeLeases()
    config = DriverConfig(batch_limit=batch_limit)
    consumer = ShardConsumer("shard-1", "arn", stream, leases, config, stop)  # type: ignore[arg-type]
    child = FakeChild(stream, stop, stop_after)
    consumer._feed(child, "at-0", "TRIM_HORIZON", NotLost())  # type: ignore[arg-type]
    return child, leases


def consume(stream: FakeStream, stop_after: int | None = None) -> tuple[FakeChild, FakeLeases]:
    """A backlog: every read fills a batch, so no read ahead is topped up."""
    return feed(stream, threading.Event(), stream.page, stop_after)


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


class ScriptedStream(FakeStream):
    """An open shard fed slowly: each read answers the next (first, end, next iterator) of
    the script, records[first:end] (or raises it, if it is an error); the Limit each read
    asked for is kept."""

    def __init__(self, count: int, answers: list[tuple[int, int, str | None] | Exception]):
        super().__init__(count)
        self.answers = answers
        self.limits: list[int] = []

    def get_records(self, **args: Any) -> dict[str, Any]:
        with self.lock:
            self.reads.append(int(args["ShardIterator"].removeprefix("at-")))
            self.limits.append(args["Limit"])
            self.read_started.set()
            answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        first, end, following = answer
        return {"Records": self.records[first:end], "NextShardIterator": following}


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
    stream = ScriptedStream(
        2,
        [
            (0, 1, "at-1"),
            (1, 1, "at-1"),  # the read ahead, sent while the child had the first record
            (1, 2, None),
        ],
    )
    stop = CountedStop()
    child, leases = feed(stream, stop, 1000)
    assert child.delivered == ["1000", "1001"]
    assert stream.reads == [0, 1, 1]
    assert stop.pauses == []  # no poll pause: the only empty answer was a read ahead
    assert child.ended and leases.checkpoints[-1] == "SHARD_END"


def test_a_batch_read_ahead_is_topped_up_with_what_arrived_while_the_child_worked() -> None:
    """The read ahead was sent when the child got the first batch; what was written while the
    child worked is read before the batch is delivered, not one batch later (without the
    top-up, every event of a steady trickle waited about two batches' work: the lag
    benchmark's p99 of 1.3-1.7 s)."""
    stream = ScriptedStream(
        4,
        [
            (0, 1, "at-1"),
            (1, 2, "at-2"),  # the read ahead
            (2, 4, None),  # the top-up: written while the child had the first batch
        ],
    )
    stop = CountedStop()
    child, leases = feed(stream, stop, 10)
    assert child.batches == [["1000"], ["1001", "1002", "1003"]]
    assert stream.reads == [0, 1, 2]
    assert stream.limits == [10, 10, 9]  # the topped-up batch stays within the batch limit
    assert stop.pauses == []
    assert child.ended and leases.checkpoints == ["1000", "1003", "SHARD_END"]


def test_a_failed_top_up_delivers_the_read_ahead_and_the_next_read_recovers() -> None:
    stream = ScriptedStream(
        3,
        [
            (0, 1, "at-1"),
            (1, 2, "at-2"),  # the read ahead
            EXPIRED,  # its top-up
            EXPIRED,  # the next read ahead, from the same iterator
            (2, 3, None),  # renewed after the last record delivered
        ],
    )
    child, leases = feed(stream, CountedStop(), 10)
    assert child.batches == [["1000"], ["1001"], ["1002"]]
    assert stream.reads == [0, 1, 2, 2, 2]
    assert stream.limits == [10, 10, 9, 10, 10]  # the third read was the top-up
    assert child.ended and leases.checkpoints[-1] == "SHARD_END"


def test_an_empty_top_up_delivers_the_read_ahead_and_reads_on_from_its_iterator() -> None:
    stream = ScriptedStream(
        3,
        [
            (0, 1, "at-1"),
            (1, 2, "at-2"),  # the read ahead
            (2, 2, "at-2"),  # its top-up: nothing new
            (2, 3, None),  # the next read ahead
        ],
    )
    stop = CountedStop()
    child, leases = feed(stream, stop, 10)
    assert child.batches == [["1000"], ["1001"], ["1002"]]
    assert stream.reads == [0, 1, 2, 2]
    assert stop.pauses == []
    assert child.ended and leases.checkpoints[-1] == "SHARD_END"


class StopOnTopUp(ScriptedStream):
    """The driver is stopped while the top-up is under way (its third read)."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(4, [(0, 1, "at-1"), (1, 2, "at-2"), (2, 4, None)])
        self.stop = stop

    def get_records(self, **args: Any) -> dict[str, Any]:
        if len(self.reads) == 2:
            self.stop.set()
        return super().get_records(**args)


def test_a_batch_topped_up_after_the_driver_stopped_is_dropped_not_delivered() -> None:
    stop = threading.Event()
    stream = StopOnTopUp(stop)
    child, leases = feed(stream, stop, 10)
    assert child.batches == [["1000"]]
    assert child.shut_down and not child.ended
    assert leases.checkpoints == ["1000", "1000"]  # never past what the child saw
