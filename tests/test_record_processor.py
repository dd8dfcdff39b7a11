"""The record processor's checkpoint rule, with fake checkpointers and catch-ups: no checkpoint
ever covers a record whose budget was neither caught up nor queued."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from amazon_kclpy.kcl import CheckpointError

from tests.helpers import Queue
from worker.engine.projector import CatchUpResult
from worker.proof.kcl_inputs import Batch, Record, RecordingCheckpointer
from worker.stream.record_processor import BudgetRecordProcessor
from worker.stream.records import ADAPTER, encode, kcl_data, stream_record


@dataclass
class FakeCheckpointer(RecordingCheckpointer):
    """Raises the queued CheckpointErrors first, then takes checkpoints."""

    errors: list[str] = field(default_factory=list)

    def checkpoint(self, sequence_number=None, sub_sequence_number=None) -> None:
        if self.errors:
            raise CheckpointError(self.errors.pop(0))
        super().checkpoint(sequence_number, sub_sequence_number)


class FlakyCatchUp:
    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.calls: list[str] = []

    def __call__(self, budget: str) -> CatchUpResult:
        self.calls.append(budget)
        if budget in self.failing:
            raise RuntimeError(f"{budget} unavailable")
        return CatchUpResult(budget, applied=1)


def rec(budget: str, seq: str, sk: str = "HEAD") -> Record:
    return Record(
        encode(stream_record(budget, sk, event_name="MODIFY", sequence=seq), ADAPTER), seq
    )


def test_distinct_budgets_are_caught_up_then_checkpointed() -> None:
    catch_up = FlakyCatchUp(set())
    processor = BudgetRecordProcessor(catch_up)
    cp = FakeCheckpointer()
    processor.process_records(Batch([rec("a", "1"), rec("b", "2", "EVENT#X"), rec("a", "3")], cp))
    assert catch_up.calls == ["a", "b"]
    assert cp.taken == ["3"]


def test_failed_budget_holds_back_every_later_checkpoint_until_it_recovers() -> None:
    catch_up = FlakyCatchUp({"b"})
    processor = BudgetRecordProcessor(catch_up)
    cp = FakeCheckpointer()
    processor.process_records(Batch([rec("a", "1"), rec("b", "2")], cp))
    processor.process_records(Batch([rec("c", "3")], cp))
    assert cp.taken == []  # neither batch may be covered while b is behind
    assert processor.pending.keys() == {"b"}
    catch_up.failing.clear()
    processor.process_records(Batch([rec("d", "4")], cp))
    assert cp.taken == ["4"] and not processor.pending
    assert catch_up.calls.count("b") == 3  # retried with every batch


def test_failed_budget_handed_to_the_queue_does_not_block() -> None:
    queue = Queue()
    processor = BudgetRecordProcessor(FlakyCatchUp({"b"}), queue)
    cp = FakeCheckpointer()
    processor.process_records(Batch([rec("a", "1"), rec("b", "2")], cp))
    assert queue.items == ["b"] and cp.taken == ["2"]


def test_enqueue_failure_blocks_the_checkpoint() -> None:
    processor = BudgetRecordProcessor(FlakyCatchUp({"b"}), Queue(fail=True))
    cp = FakeCheckpointer()
    processor.process_records(Batch([rec("b", "2")], cp))
    assert cp.taken == [] and "b" in processor.pending


@pytest.mark.parametrize(
    "data",
    [
        "%%%not-base64%%%",
        kcl_data(b"\xff\xfe not json"),
        kcl_data([1, 2, 3]),
        kcl_data({"eventName": "INSERT"}),
        kcl_data({"dynamodb": {"Keys": {"id": {"S": "x"}}}}),  # another table's keys
        kcl_data({"dynamodb": {"Keys": {"pk": {"N": "1"}, "sk": {"S": "HEAD"}}}}),
        encode(stream_record("a", "POINTER"), ADAPTER),  # not an events-table item
        encode(stream_record("", "HEAD"), ADAPTER),
    ],
)
def test_malformed_records_are_skipped_and_the_shard_goes_on(data: str) -> None:
    catch_up = FlakyCatchUp(set())
    processor = BudgetRecordProcessor(catch_up)
    cp = FakeCheckpointer()
    processor.process_records(Batch([Record(data, "1"), rec("ok", "2")], cp))
    assert catch_up.calls == ["ok"] and cp.taken == ["2"]


def test_throttled_checkpoint_is_retried() -> None:
    processor = BudgetRecordProcessor(FlakyCatchUp(set()), sleep=lambda _: None)
    cp = FakeCheckpointer(errors=["ThrottlingException", "ThrottlingException"])
    processor.process_records(Batch([rec("a", "7")], cp))
    assert cp.taken == ["7"]


def test_shutdown_exception_on_checkpoint_is_not_retried_or_fatal() -> None:
    processor = BudgetRecordProcessor(FlakyCatchUp(set()), sleep=lambda _: None)
    cp = FakeCheckpointer(errors=["ShutdownException"])
    processor.process_records(Batch([rec("a", "7")], cp))
    assert cp.taken == []


def test_shard_end_retries_pending_budgets_then_checkpoints() -> None:
    catch_up = FlakyCatchUp({"b"})
    processor = BudgetRecordProcessor(catch_up, sleep=lambda _: catch_up.failing.clear())
    cp = FakeCheckpointer()
    processor.process_records(Batch([rec("b", "1")], cp))
    assert cp.taken == []
    processor.shard_ended(Batch([], cp))  # b recovers while shard end retries
    assert cp.taken == [None]  # no sequence number: SHARD_END


def test_shard_end_with_a_budget_that_keeps_failing_exits_without_checkpoint() -> None:
    """The daemon shuts the child down after shardEnded: returning without a checkpoint would
    stall the shard for good, so the child exits and the shard is re-read instead."""
    processor = BudgetRecordProcessor(FlakyCatchUp({"b"}), sleep=lambda _: None)
    cp = FakeCheckpointer()
    processor.process_records(Batch([rec("b", "1")], cp))
    with pytest.raises(SystemExit):
        processor.shard_ended(Batch([], cp))
    assert cp.taken == []


def test_shutdown_requested_checkpoints_for_handoff() -> None:
    processor = BudgetRecordProcessor(FlakyCatchUp(set()))
    cp = FakeCheckpointer()
    processor.shutdown_requested(Batch([], cp))
    assert cp.taken == [None]


def test_unexpected_error_exits_instead_of_being_swallowed() -> None:
    def broken(_: str) -> None:
        raise RuntimeError("bug")

    processor = BudgetRecordProcessor(broken)
    processor._handle_all = None  # type: ignore[assignment,method-assign]  # a bug inside the processor itself
    with pytest.raises(SystemExit):
        processor.process_records(Batch([rec("a", "1")], FakeCheckpointer()))


def test_lease_lost_forgets_pending_work() -> None:
    processor = BudgetRecordProcessor(FlakyCatchUp({"b"}))
    processor.process_records(Batch([rec("b", "1")], FakeCheckpointer()))
    processor.lease_lost(object())
    assert not processor.pending
