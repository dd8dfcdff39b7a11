"""Stream records, in and out: the one place that knows their shapes.

A record only ever tells the worker "budget B may have changed"; nothing else in it is trusted
(the projector re-reads head, pointer and events from the tables). The product meets it in three
shapes that carry the same JSON names and differ in two details, the creation time and binary
values:

- `GET_RECORDS`: DynamoDB Streams GetRecords output as boto3 returns it (the drivers, replay):
  the time is a datetime, binaries are bytes;
- `ADAPTER`: a KCL record's base64 `data` under the MultiLangDaemon, the DynamoDB Streams
  Kinesis Adapter's JSON: the time in epoch milliseconds, binaries base64;
- `LAMBDA`: one of a Lambda event's `Records`, with `eventSourceARN`: the time in epoch
  seconds, maybe fractional, binaries base64.

Decoding: `change_of` reads any of them into one `Change` (which item kind changed, its budget,
the sequence number, the creation time); `budget_of` is the KCL processor's question on a
record's base64 data. Encoding: `encode` turns a GetRecords record into the adapter's data or a
Lambda record, and `stream_record` makes a GetRecords record for a budget, so the local drivers,
the simulation, the benchmarks and the tests all hand the processor and the handler bytes made
by one function. The adapter sets the Kinesis partition key to the stream sequence number, not
the item key, so the budget always comes from `dynamodb.Keys.pk`.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, overload

from worker.errors import InvalidInput
from worker.model import layout
from worker.model.events import check_identifier

# Items of the events table whose change means "this budget may have new events".
RELEVANT_PREFIXES = (layout.EVENT_PREFIX, layout.HEAD_SK, "ALIAS#")


def _field(document: Mapping[str, Any], name: str) -> Any:
    """Jackson may serialise `Keys` or `keys` depending on the adapter's mapper settings."""
    if name in document:
        return document[name]
    return document.get(name[0].lower() + name[1:])


def _string_attr(value: Any) -> str | None:
    if isinstance(value, Mapping):
        raw = _field(value, "S")
        return raw if isinstance(raw, str) else None
    return None


# The three shapes a record comes in (the module's docstring).
GET_RECORDS: Final = "get-records"
ADAPTER: Final = "adapter"
LAMBDA: Final = "lambda"
Shape = Literal["get-records", "adapter", "lambda"]

# What a record says, by the item it is about.
EVENT = "event"  # an event item was written: its budget may have a new event
HEAD = "head"  # the head item moved (always in the same transaction as an event item)
ALIAS = "alias"  # a reassignment's alias item (same transaction as an event item)
REMOVE = "remove"  # an item was deleted (events never are by the app)
TTL = "ttl"  # an item was deleted by DynamoDB's time to live
FOREIGN = "foreign"  # well formed, but not an item of this project's events table
KINDS = (EVENT, HEAD, ALIAS, REMOVE, TTL, FOREIGN)


@dataclass(frozen=True, slots=True)
class Change:
    """What one stream record says, whatever shape it came in: which item kind changed, the
    budget it belongs to (None for foreign records), the record's sequence number and when the
    change was made (epoch seconds, None when the record does not say)."""

    kind: str
    budget: str | None
    sequence_number: str | None
    created: float | None = None


def _is_ttl_delete(document: Mapping[str, Any]) -> bool:
    """DynamoDB marks time-to-live deletions with this service identity."""
    identity = _field(document, "UserIdentity")
    return (
        isinstance(identity, Mapping)
        and _field(identity, "Type") == "Service"
        and _field(identity, "PrincipalId") == "dynamodb.amazonaws.com"
    )


def created_at(document: Mapping[str, Any], shape: Shape) -> float | None:
    """When the record's change was made, in epoch seconds, from any of the three shapes (the
    field's unit is the one thing that tells them apart); None when absent or unreadable."""
    dynamodb = _field(document, "Dynamodb")
    value = (
        _field(dynamodb, "ApproximateCreationDateTime") if isinstance(dynamodb, Mapping) else None
    )
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value / 1000 if shape == ADAPTER else float(value)


def change_of(document: Any, shape: Shape = LAMBDA) -> Change:
    """Classify one decoded stream record (GetRecords output, the adapter's JSON, or one of a
    Lambda event's `Records`; `shape` only matters for the creation time), or InvalidInput
    when it is malformed: no `dynamodb` section or keys, or a budget id the persist path would
    refuse."""
    if not isinstance(document, Mapping):
        raise InvalidInput("record data is not a JSON object")
    dynamodb = _field(document, "Dynamodb")
    if not isinstance(dynamodb, Mapping):
        raise InvalidInput("record has no dynamodb section")
    sequence = _field(dynamodb, "SequenceNumber")
    sequence = sequence if isinstance(sequence, str) else None
    created = created_at(document, shape)
    keys = _field(dynamodb, "Keys")
    if not isinstance(keys, Mapping):
        raise InvalidInput("record has no Keys")
    source = _field(document, "EventSource")
    pk, sk = _string_attr(keys.get(layout.PK)), _string_attr(keys.get(layout.SK))
    if (source is not None and source != "aws:dynamodb") or pk is None or sk is None:
        return Change(FOREIGN, None, sequence, created)
    if sk.startswith(layout.EVENT_PREFIX):
        kind = EVENT
    elif sk == layout.HEAD_SK:
        kind = HEAD
    elif sk.startswith("ALIAS#"):
        kind = ALIAS
    else:
        return Change(FOREIGN, None, sequence, created)
    if _field(document, "EventName") == "REMOVE":
        kind = TTL if _is_ttl_delete(document) else REMOVE
    return Change(kind, check_identifier("budget", pk), sequence, created)


def budget_of(data_b64: str) -> str | None:
    """The budget a KCL record's data names (an event, head or alias item changed), None for
    a record that is not about an event (a REMOVE), or InvalidInput for a malformed record;
    under KCL a foreign record is malformed too (the adapter reads only the events table)."""
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInput("record data is not base64") from None
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("record data is not JSON") from None
    change = change_of(document, ADAPTER)
    if change.kind == FOREIGN:
        keys = _field(_field(document, "Dynamodb"), "Keys")
        sk = _string_attr(keys.get(layout.SK))
        if sk is None or _string_attr(keys.get(layout.PK)) is None:
            raise InvalidInput("record keys are not this project's (pk, sk): another table?")
        raise InvalidInput(f"record sort key {sk[:40]!r} is not an event, head or alias")
    if change.kind in (REMOVE, TTL):
        return None  # events are never deleted by the app; nothing to project
    return change.budget


def stream_record(
    budget: str,
    sort_key: str,
    *,
    event_name: str = "INSERT",
    sequence: int | str = 100,
    created: datetime | None = None,
) -> dict[str, Any]:
    """A GetRecords record (as boto3 returns it, KEYS_ONLY) for one item of the events table:
    what the simulation, the benchmarks and the tests feed `encode` where a server would."""
    when = created or datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    return {
        "eventID": f"id-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": when,
            "Keys": {layout.PK: {"S": budget}, layout.SK: {"S": sort_key}},
            "SequenceNumber": str(sequence),
            "SizeBytes": 40,
            "StreamViewType": "KEYS_ONLY",
        },
    }


def kcl_data(document: Any) -> str:
    """A KCL record's `data` carrying `document` as JSON (bytes are carried as they are, for
    malformed inputs): the framing the adapter puts around a record."""
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.b64encode(raw).decode()


@overload
def encode(record: Mapping[str, Any], shape: Literal["adapter"]) -> str: ...
@overload
def encode(
    record: Mapping[str, Any], shape: Literal["lambda"], *, stream_arn: str
) -> dict[str, Any]: ...
def encode(
    record: Mapping[str, Any], shape: Shape, *, stream_arn: str | None = None
) -> str | dict[str, Any]:
    """A GetRecords record re-encoded as the adapter delivers it under KCL (a record's base64
    `data`, times in epoch milliseconds) or as Lambda hands it to a function (a `Records`
    entry, times in epoch seconds, `eventSourceARN` added); binaries become base64 in both."""
    if shape == GET_RECORDS:
        raise ValueError("GetRecords output is what encode starts from, not a target")

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return int(value.timestamp() * 1000) if shape == ADAPTER else value.timestamp()
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | set | tuple):
            return [plain(v) for v in value]
        return value

    converted: dict[str, Any] = {k: plain(v) for k, v in record.items()}
    if shape == ADAPTER:
        return kcl_data(converted)
    converted["eventSourceARN"] = stream_arn
    return converted
