"""The lease table, in KCL's schema, shared by the local stream driver and `replay`.

KCL stores one item per shard: `leaseKey` (the shard id, hash key), `checkpoint` (a sequence
number or a sentinel such as TRIM_HORIZON or SHARD_END), `checkpointSubSequenceNumber`,
`leaseOwner`, `leaseCounter`, `ownerSwitchesSinceCheckpoint`, `parentShardId` (a string set).
The local driver writes the same attributes, so `replay` rewrites checkpoints the same way for
both. It adds one attribute KCL ignores, `localHeartbeat` (epoch seconds), because a single
local process has no peers to detect a dead owner by watching `leaseCounter`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from worker import logs
from worker.engine.failures import CONDITIONAL_CHECK_FAILED, error_code
from worker.model import layout

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logs.get(__name__)

TRIM_HORIZON = "TRIM_HORIZON"
LATEST = "LATEST"
SHARD_END = "SHARD_END"


@dataclass(frozen=True, slots=True)
class Lease:
    shard_id: str
    checkpoint: str
    sub_sequence_number: int
    owner: str | None
    counter: int
    parents: tuple[str, ...]
    heartbeat: float | None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Lease:
        return cls(
            shard_id=item["leaseKey"]["S"],
            checkpoint=item.get("checkpoint", {}).get("S", TRIM_HORIZON),
            sub_sequence_number=int(item.get("checkpointSubSequenceNumber", {}).get("N", "0")),
            owner=item.get("leaseOwner", {}).get("S"),
            counter=int(item.get("leaseCounter", {}).get("N", "0")),
            parents=tuple(sorted(item.get("parentShardId", {}).get("SS", []))),
            heartbeat=float(item["localHeartbeat"]["N"]) if "localHeartbeat" in item else None,
        )

    def is_live(self, now: float, failover_seconds: float) -> bool:
        """Held by a running worker, as far as this one reading tells. A KCL lease (no local
        heartbeat) with an owner counts as live here: KCL leaves no timestamp to judge by, and
        keeps the owner after its worker stops; `replay.live_leases` watches its counter."""
        if self.owner is None:
            return False
        if self.heartbeat is None:
            return True
        return now - self.heartbeat < failover_seconds


@dataclass(slots=True)
class LeaseTable:
    client: DynamoDBClient
    table: str

    def create(self) -> bool:
        """Create the table with KCL's key schema if absent; True if it was created."""
        try:
            self.client.create_table(
                TableName=self.table,
                KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
            created = False
        else:
            created = True
        self.client.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        return created

    def all(self) -> list[Lease]:
        leases: list[Lease] = []
        start: dict[str, Any] | None = None
        while True:
            args: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
            if start:
                args["ExclusiveStartKey"] = start
            page = self.client.scan(**args)
            leases.extend(Lease.from_item(i) for i in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return sorted(leases, key=lambda lease: lease.shard_id)

    def get(self, shard_id: str) -> Lease | None:
        item = self.client.get_item(
            TableName=self.table, Key={"leaseKey": layout.s(shard_id)}, ConsistentRead=True
        ).get("Item")
        return Lease.from_item(item) if item else None

    def ensure(self, shard_id: str, parents: list[str], initial: str = TRIM_HORIZON) -> None:
        item: dict[str, Any] = {
            "leaseKey": layout.s(shard_id),
            "checkpoint": layout.s(initial),
            "checkpointSubSequenceNumber": layout.n(0),
            "leaseCounter": layout.n(0),
            "ownerSwitchesSinceCheckpoint": layout.n(0),
        }
        if parents:
            item["parentShardId"] = {"SS": sorted(parents)}
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(leaseKey)",
            )
            log.info("lease created", shard_id=shard_id, checkpoint=initial, parents=parents)
        except ClientError as exc:
            if error_code(exc) != CONDITIONAL_CHECK_FAILED:
                raise

    def take(self, shard_id: str, owner: str, failover_seconds: float) -> bool:
        """Take the lease if it is free, ours, or its local owner stopped heart-beating."""
        now = time.time()
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"leaseKey": layout.s(shard_id)},
                UpdateExpression="SET leaseOwner = :me, localHeartbeat = :now "
                "ADD leaseCounter :one, ownerSwitchesSinceCheckpoint :switch",
                ConditionExpression="attribute_not_exists(leaseOwner) OR leaseOwner = :me "
                "OR localHeartbeat < :expired",
                ExpressionAttributeValues={
                    ":me": layout.s(owner),
                    ":now": layout.n(int(now)),
                    ":one": layout.n(1),
                    ":switch": layout.n(1),
                    ":expired": layout.n(int(now - failover_seconds)),
                },
            )
        except ClientError as exc:
            if error_code(exc) == CONDITIONAL_CHECK_FAILED:
                return False
            raise
        return True

    def renew(self, shard_id: str, owner: str) -> bool:
        return self._owned_update(
            shard_id,
            owner,
            "SET localHeartbeat = :now ADD leaseCounter :one",
            {":now": layout.n(int(time.time())), ":one": layout.n(1)},
        )

    def release(self, shard_id: str, owner: str) -> bool:
        return self._owned_update(shard_id, owner, "REMOVE leaseOwner, localHeartbeat", {})

    def checkpoint(self, shard_id: str, owner: str, sequence: str, sub: int) -> bool:
        """Record a checkpoint; False if the lease is no longer ours."""
        return self._owned_update(
            shard_id,
            owner,
            "SET checkpoint = :c, checkpointSubSequenceNumber = :sub, "
            "ownerSwitchesSinceCheckpoint = :zero, localHeartbeat = :now",
            {
                ":c": layout.s(sequence),
                ":sub": layout.n(sub),
                ":zero": layout.n(0),
                ":now": layout.n(int(time.time())),
            },
        )

    def reset(self, shard_id: str, checkpoint: str) -> None:
        """Replay: rewrite a checkpoint and take the lease away from whoever holds it. Without
        an owner and with a new lease counter, a worker still running (`--force`) can no
        longer checkpoint over the replayed position: its conditional writes fail, it loses
        the lease, and the shard restarts from the new checkpoint. `checkpointOwner` is KCL 3's
        mark of a lease being handed over between workers: a replayed lease belongs to no one,
        so the leader assigns it afresh."""
        self.client.update_item(
            TableName=self.table,
            Key={"leaseKey": layout.s(shard_id)},
            UpdateExpression="SET checkpoint = :c, checkpointSubSequenceNumber = :zero "
            "REMOVE pendingCheckpoint, pendingCheckpointSubSequenceNumber, "
            "pendingCheckpointState, leaseOwner, checkpointOwner, localHeartbeat "
            "ADD leaseCounter :one",
            ExpressionAttributeValues={
                ":c": layout.s(checkpoint),
                ":zero": layout.n(0),
                ":one": layout.n(1),
            },
        )

    def _owned_update(
        self, shard_id: str, owner: str, expression: str, values: dict[str, Any]
    ) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"leaseKey": layout.s(shard_id)},
                UpdateExpression=expression,
                ConditionExpression="leaseOwner = :me",
                ExpressionAttributeValues={":me": layout.s(owner), **values},
            )
        except ClientError as exc:
            if error_code(exc) == CONDITIONAL_CHECK_FAILED:
                return False
            raise
        return True
