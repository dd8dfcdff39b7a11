"""boto3 clients configured the one way this project wants them.

botocore's standard retry mode handles throttling, 5xx and transient network errors with
jittered backoff; our own loops above it only handle what botocore cannot know about
(conditions, cancellation reasons, ambiguity after it gave up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from worker.config import Settings, ToolSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient


# Connections kept per client beyond the per-budget threads (the processor's own thread, the
# position reads): botocore keeps 10 by default and opens and drops a connection for every
# call beyond them, which on AWS is a TLS handshake each time.
SPARE_CONNECTIONS = 4


def _config(settings: Settings) -> Config:
    return Config(
        retries={"mode": "standard", "total_max_attempts": settings.sdk_max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_pool_connections=max(10, settings.concurrency + SPARE_CONNECTIONS),
    )


def _session(settings: Settings) -> boto3.session.Session:
    # DynamoDB Local accepts any credentials; give it some when none are configured so the
    # embedded default works on a machine that never saw AWS.
    local = settings.endpoint_url is not None and _is_loopback(settings.endpoint_url)
    has_creds = ToolSettings.from_env().aws_credentials
    if local and not has_creds:
        return boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",
            region_name=settings.region,
        )
    return boto3.session.Session(region_name=settings.region)


def _is_loopback(url: str) -> bool:
    return any(host in url for host in ("://localhost", "://127.", "://[::1]"))


def dynamodb(settings: Settings) -> DynamoDBClient:
    return _session(settings).client(
        "dynamodb", endpoint_url=settings.endpoint_url, config=_config(settings)
    )


def dynamodb_streams(settings: Settings) -> DynamoDBStreamsClient:
    return _session(settings).client(
        "dynamodbstreams", endpoint_url=settings.streams_endpoint_url, config=_config(settings)
    )


def sqs(settings: Settings) -> SQSClient:
    # No explicit endpoint: botocore itself resolves AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL.
    return _session(settings).client("sqs", config=_config(settings))
