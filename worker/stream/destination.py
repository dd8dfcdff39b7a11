"""The message a Lambda event source mapping sends to its on-failure destination when it gives
up on a DynamoDB stream batch (retries exhausted, or records too old).

It carries where the batch was, not the records: `DDBStreamBatchInfo` names the shard, the
first and last sequence numbers, the batch size, the arrival times and the stream ARN, next to
`requestContext` (why: `condition`, `approximateInvokeCount`) and `responseContext`. So
recovering means reading that range of the stream again while it is still retained (24 hours),
which `redrive` does; past that, only the sweep (`catch-up --all`) finds the budgets.

`failure_message` builds one (the local Lambda driver writes them, so `redrive` is exercised
end to end); `parse` reads one, given as the destination's message itself, as an SNS
notification or an SQS message wrapping it, or as `aws sqs receive-message` output.
Pure: no I/O.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.errors import InvalidInput
from worker.stream.records import LAMBDA, created_at

RETRIES_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_TOO_OLD = "RecordAgeExceeded"


@dataclass(frozen=True, slots=True)
class BatchRange:
    """The part of the stream a discarded batch covered."""

    shard_id: str
    start: str
    end: str
    stream_arn: str | None
    batch_size: int | None
    first_arrival: datetime | None
    condition: str | None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_message(
    *,
    shard_id: str,
    stream_arn: str,
    records: Sequence[Mapping[str, Any]],
    condition: str,
    invoke_count: int,
    function_error: str | None,
    function_arn: str = "local",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The on-failure destination's message for a discarded batch of Lambda-shaped records."""
    first, last = records[0], records[-1]
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error is not None:
        response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": (now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(created_at(first, LAMBDA) or 0),
            "approximateArrivalOfLastRecord": _iso(created_at(last, LAMBDA) or 0),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def _unwrap(document: Any) -> Any:
    """The destination's message inside the envelopes an operator may hand us."""
    for _ in range(4):
        if isinstance(document, Mapping) and "DDBStreamBatchInfo" in document:
            return document
        if isinstance(document, Mapping):
            inner = document.get("Messages")  # `aws sqs receive-message` output
            if isinstance(inner, list) and len(inner) == 1:
                document = inner[0]
                continue
            # An SQS message (Body, or body in a Lambda SQS event) or an SNS notification.
            text = document.get("Body", document.get("body", document.get("Message")))
            if isinstance(text, str):
                try:
                    document = json.loads(text)
                except json.JSONDecodeError:
                    raise InvalidInput("the message body is not JSON") from None
                continue
        break
    return document


def _arrival(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse(text: str) -> BatchRange:
    """The range a destination message names, or InvalidInput saying what is missing."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput("not JSON: expected a Lambda on-failure destination message") from None
    info = _unwrap(document)
    if not isinstance(info, Mapping) or not isinstance(info.get("DDBStreamBatchInfo"), Mapping):
        raise InvalidInput(
            "no DDBStreamBatchInfo: not a DynamoDB stream on-failure destination message"
        )
    batch = info["DDBStreamBatchInfo"]
    values = {name: batch.get(name) for name in ("shardId", "startSequenceNumber")}
    values["endSequenceNumber"] = batch.get("endSequenceNumber") or values["startSequenceNumber"]
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"DDBStreamBatchInfo.{name} is missing")
    for name in ("startSequenceNumber", "endSequenceNumber"):
        if not str(values[name]).isdigit():
            raise InvalidInput(f"DDBStreamBatchInfo.{name} is not a sequence number")
    arn = batch.get("streamArn")
    size = batch.get("batchSize")
    context = info.get("requestContext")
    condition = context.get("condition") if isinstance(context, Mapping) else None
    return BatchRange(
        shard_id=str(values["shardId"]),
        start=str(values["startSequenceNumber"]),
        end=str(values["endSequenceNumber"]),
        stream_arn=arn if isinstance(arn, str) and arn else None,
        batch_size=size if isinstance(size, int) else None,
        first_arrival=_arrival(batch.get("approximateArrivalOfFirstRecord")),
        condition=condition if isinstance(condition, str) else None,
    )
