"""`replay` against a lease table in the shape KCL 3 writes it (no local heartbeat; the owner
stays set after its worker stopped): it tells a stopped worker from a running one by watching
the lease counter, as KCL does. tests/test_kcl_e2e.py runs it against the real daemon's table."""

from __future__ import annotations

import pytest

from tests.helpers import CREATE_T, fresh_tables
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.model import layout
from worker.stream import replay
from worker.stream.leases import TRIM_HORIZON, LeaseTable
from worker.stream.local_driver import list_shards, stream_arn

pytestmark = pytest.mark.ddb_local


@pytest.fixture
def kcl_leases(ddb_endpoint: str) -> tuple[Settings, str]:
    """Fresh tables with one event on the stream and the shard's lease as KCL 3 left it after
    a clean stop: owner and checkpoint set, no timestamp."""
    settings = fresh_tables(ddb_endpoint, "replay")
    store = Store.from_settings(aws.dynamodb(settings), settings)
    Persister(store).persist("replay-budget", "TransactionCreated", "t1", CREATE_T)
    client = aws.dynamodb(settings)
    arn = stream_arn(client, settings.events_table)
    shard = list_shards(aws.dynamodb_streams(settings), arn)[0]["ShardId"]
    LeaseTable(client, settings.lease_table).create()
    client.put_item(
        TableName=settings.lease_table,
        Item={
            "leaseKey": layout.s(shard),
            "leaseOwner": layout.s("w1"),
            "leaseCounter": layout.n(9),
            "checkpoint": layout.s("000000000000000000042"),
            "checkpointSubSequenceNumber": layout.n(0),
            "ownerSwitchesSinceCheckpoint": layout.n(0),
            "startingHashKey": layout.s("0"),
            "endingHashKey": layout.s("1"),
            "checkpointOwner": layout.s("w1"),
        },
    )
    return settings, shard


def _replay(settings: Settings, sleep) -> list[replay.ShardReset]:
    return replay.replay(
        aws.dynamodb(settings),
        aws.dynamodb_streams(settings),
        settings.events_table,
        settings.lease_table,
        replay.Target(trim_horizon=True),
        failover_seconds=10.0,
        sleep=sleep,
    )


def test_a_stopped_kcl_workers_lease_is_replayed(kcl_leases: tuple[Settings, str]) -> None:
    settings, shard = kcl_leases
    waited: list[float] = []
    resets = _replay(settings, waited.append)  # nobody renews while replay watches
    assert waited == [10.0]  # one failover time, as KCL's lease taker judges expiry
    assert [(r.shard_id, r.old, r.new) for r in resets] == [
        (shard, "000000000000000000042", TRIM_HORIZON)
    ]
    lease = LeaseTable(aws.dynamodb(settings), settings.lease_table).get(shard)
    assert lease is not None and lease.owner is None and lease.counter == 10
    item = aws.dynamodb(settings).get_item(
        TableName=settings.lease_table, Key={"leaseKey": layout.s(shard)}
    )["Item"]
    assert "checkpointOwner" not in item  # no handoff left half-done: the leader reassigns it
    assert item["startingHashKey"] == layout.s("0")  # KCL's own attributes are kept


def test_a_running_kcl_worker_is_refused(kcl_leases: tuple[Settings, str]) -> None:
    settings, shard = kcl_leases
    client = aws.dynamodb(settings)

    def renewed_meanwhile(_seconds: float) -> None:
        # What a live KCL worker does every third of the failover time.
        client.update_item(
            TableName=settings.lease_table,
            Key={"leaseKey": layout.s(shard)},
            UpdateExpression="ADD leaseCounter :one",
            ExpressionAttributeValues={":one": layout.n(1)},
        )

    with pytest.raises(replay.LeasesLive, match="w1"):
        _replay(settings, renewed_meanwhile)
    lease = LeaseTable(client, settings.lease_table).get(shard)
    assert lease is not None and lease.checkpoint == "000000000000000000042"  # untouched
