"""`budget-worker kcl-processor` driven over stdin/stdout exactly as the MultiLangDaemon does,
against DynamoDB Local."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import CREATE_T, assert_matches_fold
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.stream.multilang import ChildFailed, MultiLangChild, StreamRecord
from worker.stream.records import ADAPTER, encode, stream_record


@pytest.fixture
def child(ddb_settings: Settings):
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": ddb_settings.endpoint_url or "",
        "BUDGET_EVENTS_TABLE": ddb_settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": ddb_settings.projections_table,
        "BUDGET_LOG_FORMAT": "json",
    }
    env.pop("BUDGET_RETRY_QUEUE_URL", None)
    process = MultiLangChild(
        [sys.executable, "-m", "worker", "kcl-processor"], env=env, stderr=subprocess.DEVNULL
    )
    yield process
    process.close()


def record(budget: str, seq: str, sk: str = "HEAD") -> StreamRecord:
    return StreamRecord(
        encode(stream_record(budget, sk, event_name="MODIFY", sequence=seq), ADAPTER),
        seq,
        seq,
        1700000000000,
    )


class Checkpoints:
    def __init__(self, errors: list[str] | None = None) -> None:
        self.errors = list(errors or [])
        self.requests: list[tuple[str | None, int | None]] = []

    def __call__(self, sequence: str | None, sub: int | None) -> str | None:
        self.requests.append((sequence, sub))
        return self.errors.pop(0) if self.errors else None


def test_full_lifecycle(child: MultiLangChild, store: Store, budget: str) -> None:
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    persister.persist(budget, "TransactionUpdated", "t1", {"amount": 5})
    child.initialize("shardId-00000001", "TRIM_HORIZON")
    checkpoints = Checkpoints(errors=["ThrottlingException"])
    child.process_records(
        [
            record(budget, "101", "EVENT#A"),
            record("garbage-" + budget, "102", "POINTER"),
            StreamRecord("!!notbase64", "103", "103", 0),
            record(budget, "104"),
        ],
        millis_behind=0,
        on_checkpoint=checkpoints,
    )
    assert checkpoints.requests == [("104", 0), ("104", 0)]  # throttled once, then retried
    assert store.pointer(budget) == store.head(budget)
    assert_matches_fold(store, budget)
    shutdown = Checkpoints()
    child.shutdown_requested(shutdown)
    assert shutdown.requests == [(None, None)]
    ended = Checkpoints()
    child.shard_ended(ended)
    assert ended.requests == [(None, None)]
    assert child.close() == 0


def test_lease_lost_takes_no_checkpoint(child: MultiLangChild) -> None:
    child.initialize("shardId-00000002", "TRIM_HORIZON")
    child.lease_lost()  # a checkpoint request here would fail the call (no handler)
    assert child.close() == 0


def test_catch_up_failure_never_checkpoints(ddb_settings: Settings, budget: str) -> None:
    """Point the processor at a projections table that does not exist: catch-up fails, no
    retry queue is configured, so the batch must not be checkpointed."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": ddb_settings.endpoint_url or "",
        "BUDGET_EVENTS_TABLE": ddb_settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": "missing-" + budget,
        "BUDGET_SHARD_END_ATTEMPTS": "1",
    }
    child = MultiLangChild(
        [sys.executable, "-m", "worker", "kcl-processor"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        Persister(Store.from_settings(aws.dynamodb(ddb_settings), ddb_settings)).persist(
            budget, "TransactionCreated", "t1", CREATE_T
        )
        child.initialize("shardId-00000003", "TRIM_HORIZON")
        checkpoints = Checkpoints()
        child.process_records([record(budget, "201")], 0, checkpoints)
        child.process_records([record("other-" + budget, "202")], 0, checkpoints)
        assert checkpoints.requests == []
        # At shard end a budget that still fails makes the child exit without a checkpoint
        # (acknowledging would stall the shard: the daemon shuts the child down right after).
        with pytest.raises(ChildFailed):
            child.shard_ended(checkpoints)
        assert checkpoints.requests == []
        assert child.process.wait(timeout=30) != 0
    finally:
        child.close()


@pytest.mark.parametrize(
    "line", ['{"action": "processRecords"}', "not json at all", '{"action": "explode"}']
)
def test_malformed_protocol_message_stops_the_child_without_a_status(
    child: MultiLangChild, line: str
) -> None:
    """A message the child cannot understand must not be acknowledged: acknowledging a
    processRecords it did not process would let a later checkpoint cover those records."""
    assert child.process.stdin is not None
    child.process.stdin.write(line + "\n")
    child.process.stdin.flush()
    with pytest.raises(ChildFailed):
        child.receive()
    assert child.process.wait(timeout=30) != 0
