"""Table definitions and idempotent creation (`budget-worker tables create`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from worker import logs
from worker.config import Settings
from worker.engine.failures import error_code
from worker.model import layout

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logs.get(__name__)

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
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
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
    return result
