"""Reading a DynamoDB stream's shards directly (DescribeStream, GetShardIterator, GetRecords):
the parts the Lambda-shaped local driver, `redrive` and the tests share.

Sequence numbers are decimal strings, ordered within a shard; they are compared as integers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from worker.engine.failures import error_code
from worker.errors import BudgetWorkerError

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

# Errors meaning "the stream no longer holds what was asked for".
GONE = frozenset({"TrimmedDataAccessException", "ResourceNotFoundException"})


class NotRetained(BudgetWorkerError):
    """The stream no longer holds the records asked for (past the 24-hour retention, or the
    shard or stream is gone)."""


def sequence_key(sequence: str) -> int:
    return int(sequence)


def pages(
    streams: DynamoDBStreamsClient, iterator: str | None, *, limit: int = 1000
) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
    """GetRecords pages from `iterator` until the shard ends or a page comes back empty (the
    reader is caught up with an open shard); each page with the iterator that follows it."""
    while iterator is not None:
        response = streams.get_records(ShardIterator=iterator, Limit=limit)
        found: list[dict[str, Any]] = list(response.get("Records", []))  # type: ignore[arg-type]
        iterator = response.get("NextShardIterator")
        yield found, iterator
        if not found:
            return


def read_range(
    streams: DynamoDBStreamsClient, stream_arn: str, shard_id: str, start: str, end: str
) -> list[dict[str, Any]]:
    """The records of `shard_id` from sequence number `start` through `end`, or NotRetained
    when the stream no longer holds them (the first record there is past `start` too: the
    beginning was trimmed)."""
    try:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=start,
        ).get("ShardIterator")
        found: list[dict[str, Any]] = []
        last = sequence_key(end)
        for page, _ in pages(streams, iterator):
            for record in page:
                if sequence_key(record["dynamodb"]["SequenceNumber"]) > last:
                    return found
                found.append(record)
    except ClientError as exc:
        if error_code(exc) in GONE:
            raise NotRetained(
                f"the stream no longer holds shard {shard_id} from {start}: {error_code(exc)}"
            ) from exc
        raise
    if not found or sequence_key(found[0]["dynamodb"]["SequenceNumber"]) > sequence_key(start):
        raise NotRetained(f"the stream no longer holds record {start} of shard {shard_id}")
    return found


def read_all(streams: DynamoDBStreamsClient, stream_arn: str) -> list[dict[str, Any]]:
    """Every record the stream holds, shard by shard from the trim horizon (tests, tools)."""
    found: list[dict[str, Any]] = []
    start: str | None = None
    while True:
        args: dict[str, Any] = {"StreamArn": stream_arn}
        if start:
            args["ExclusiveStartShardId"] = start
        description = streams.describe_stream(**args)["StreamDescription"]
        for shard in description.get("Shards", []):
            iterator = streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            ).get("ShardIterator")
            for page, _ in pages(streams, iterator):
                found.extend(page)
        start = description.get("LastEvaluatedShardId")
        if not start:
            return found
