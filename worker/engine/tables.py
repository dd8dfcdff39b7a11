"""Table definitions and idempotent creation (`budget-worker tables create`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from worker import logs
from worker.config import Settings
from worker.engine.failures import CONDITIONAL_CHECK_FAILED, error_code
from worker.errors import InfrastructureError
from worker.model import layout

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logs.get(__name__)

# DynamoDB builds a new index from the table's items; a sparse one is quick, but not instant.
INDEX_WAIT_SECONDS = 900.0

_KEY_SCHEMA = [
    {"AttributeName": layout.PK, "KeyType": "HASH"},
    {"AttributeName": layout.SK, "KeyType": "RANGE"},
]


def events_table_spec(name: str) -> dict[str, Any]:
    # KEYS_ONLY: a stream record only has to say "budget B changed"; the worker re-reads the
    # truth from the table (DESIGN: it does not trust stream order or delivery).
    return {
        "TableName": name,
        "KeySchema": _KEY_SCHEMA,
        "AttributeDefinitions": [
            {"AttributeName": layout.PK, "AttributeType": "S"},
            {"AttributeName": layout.SK, "AttributeType": "S"},
            {"AttributeName": layout.BUCKET, "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [budgets_index_spec()],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    }


def budgets_index_spec() -> dict[str, Any]:
    """The sparse budget listing (layout.BUDGETS_INDEX): head items only, keys only."""
    return {
        "IndexName": layout.BUDGETS_INDEX,
        "KeySchema": [
            {"AttributeName": layout.BUCKET, "KeyType": "HASH"},
            {"AttributeName": layout.PK, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }


def projections_table_spec(name: str) -> dict[str, Any]:
    return {
        "TableName": name,
        "KeySchema": _KEY_SCHEMA,
        "AttributeDefinitions": [
            {"AttributeName": layout.PK, "AttributeType": "S"},
            {"AttributeName": layout.SK, "AttributeType": "S"},
            {"AttributeName": layout.DATE_KEY, "AttributeType": "S"},
        ],
        "LocalSecondaryIndexes": [
            {
                "IndexName": layout.BY_DATE_INDEX,
                "KeySchema": [
                    {"AttributeName": layout.PK, "KeyType": "HASH"},
                    {"AttributeName": layout.DATE_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


@dataclass(slots=True)
class CreateResult:
    """Which tables `create_tables` created and which already existed."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    # Upgrades of an existing events table made by this call (the budgets index added, and
    # the listing bucket written onto head items that predate it).
    upgraded: list[str] = field(default_factory=list)


def create_tables(client: DynamoDBClient, settings: Settings) -> CreateResult:
    """Create the events and projections tables if absent and wait until both are active.

    The lease table is not created here: in production KCL creates and owns it, and the local
    stream driver creates it with KCL's schema when it first runs.
    """
    result = CreateResult()
    specs = [
        events_table_spec(settings.events_table),
        projections_table_spec(settings.projections_table),
    ]
    for spec in specs:
        name = spec["TableName"]
        try:
            client.create_table(**spec)
            result.created.append(name)
            log.info("table created", table=name)
        except ClientError as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
            result.existing.append(name)
            log.info("table exists", table=name)
    waiter = client.get_waiter("table_exists")
    for spec in specs:
        waiter.wait(TableName=spec["TableName"], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    if settings.events_table in result.existing:
        result.upgraded = _upgrade_events_table(client, settings.events_table)
    return result


def _wait_for_index(
    client: DynamoDBClient, table: str, index: str, timeout: float = INDEX_WAIT_SECONDS
) -> None:
    """A new index is usable (and complete) only once ACTIVE; before that a query may miss
    items, so the upgrade must not report success earlier."""
    deadline = time.monotonic() + timeout
    while True:
        described = client.describe_table(TableName=table)["Table"]
        status = {
            i["IndexName"]: i.get("IndexStatus")
            for i in described.get("GlobalSecondaryIndexes", [])
        }.get(index)
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise InfrastructureError(
                f"index {index} of {table} is still {status} after {timeout:.0f}s; "
                "create the tables again later to finish the upgrade"
            )
        time.sleep(1.0)


def _upgrade_events_table(client: DynamoDBClient, table: str) -> list[str]:
    """Bring an events table created before the budgets index up to date, idempotently: add
    the index, then give every head item without one its bucket (one scan, once: later runs
    find nothing to do). Until then such budgets are missing from listings and sweeps."""
    done: list[str] = []
    described = client.describe_table(TableName=table)["Table"]
    indexes = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
    if layout.BUDGETS_INDEX not in indexes:
        client.update_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": layout.PK, "AttributeType": "S"},
                {"AttributeName": layout.BUCKET, "AttributeType": "S"},
            ],
            GlobalSecondaryIndexUpdates=[{"Create": budgets_index_spec()}],  # type: ignore[typeddict-item]
        )
        log.info("budgets index added, waiting until active", table=table)
        _wait_for_index(client, table, layout.BUDGETS_INDEX)
        done.append(f"{table}: index {layout.BUDGETS_INDEX} added")
    bucketed = 0
    pages = client.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="sk = :head AND attribute_not_exists(#b)",
        ExpressionAttributeNames={"#b": layout.BUCKET},
        ExpressionAttributeValues={":head": layout.s(layout.HEAD_SK)},
        ProjectionExpression="pk",
    )
    for page in pages:
        for item in page.get("Items", []):
            budget = item[layout.PK]["S"]
            try:
                client.update_item(
                    TableName=table,
                    Key=layout.key(budget, layout.HEAD_SK),
                    UpdateExpression="SET #b = :b",
                    ConditionExpression="attribute_exists(sk) AND attribute_not_exists(#b)",
                    ExpressionAttributeNames={"#b": layout.BUCKET},
                    ExpressionAttributeValues={":b": layout.s(layout.bucket_of(budget))},
                )
                bucketed += 1
            except ClientError as exc:
                if error_code(exc) != CONDITIONAL_CHECK_FAILED:  # a persist got there first
                    raise
    if bucketed:
        log.info("listing buckets written", table=table, heads=bucketed)
        done.append(f"{table}: {bucketed} budgets given a listing bucket")
    return done
