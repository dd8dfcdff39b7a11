"""Throw-away tables on a DynamoDB Local: tests, benchmarks and examples each want a set of
their own (a fresh stream carries only their events), named so that runs sharing one server
never collide."""

from __future__ import annotations

import uuid

from worker.config import Settings
from worker.engine import aws
from worker.engine.tables import create_tables


def scratch_tables(endpoint: str, prefix: str) -> Settings:
    """Settings naming new, uniquely named tables on `endpoint`, created and active."""
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        events_table=f"{prefix}-{run}-events",
        projections_table=f"{prefix}-{run}-projections",
        lease_table=f"{prefix}-{run}-leases",
        endpoint_url=endpoint,
        streams_endpoint_url=endpoint,
    )
    create_tables(aws.dynamodb(settings), settings)
    return settings
