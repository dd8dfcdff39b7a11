"""Decoding stream records: which budget does a record say changed?

Two shapes carry the same facts. Under KCL, a record's `data` is base64 of the JSON DynamoDB
Streams record as the DynamoDB Streams Kinesis Adapter serialises it (`eventName`,
`dynamodb.Keys`, `dynamodb.SequenceNumber`, ...); the adapter sets the Kinesis partition key to
the stream sequence number, not the item key, so the budget comes from `dynamodb.Keys.pk`. A
Lambda event's `Records` are the same JSON, already decoded. `change_of` reads either into one
`Change`. Nothing else in a record is trusted: the projector re-reads head, pointer and events
from the tables.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    budget it belongs to (None for foreign records) and the record's sequence number."""

    kind: str
    budget: str | None
    sequence_number: str | None


def _is_ttl_delete(document: Mapping[str, Any]) -> bool:
    """DynamoDB marks time-to-live deletions with this service identity."""
    identity = _field(document, "UserIdentity")
    return (
        isinstance(identity, Mapping)
        and _field(identity, "Type") == "Service"
        and _field(identity, "PrincipalId") == "dynamodb.amazonaws.com"
    )


def change_of(document: Any) -> Change:
    """Classify one decoded stream record (the service's JSON: GetRecords output re-encoded,
    the adapter's JSON, or one of a Lambda event's `Records`), or InvalidInput when it is
    malformed: no `dynamodb` section or keys, or a budget id the persist path would refuse."""
    if not isinstance(document, Mapping):
        raise InvalidInput("record data is not a JSON object")
    dynamodb = _field(document, "Dynamodb")
    if not isinstance(dynamodb, Mapping):
        raise InvalidInput("record has no dynamodb section")
    sequence = _field(dynamodb, "SequenceNumber")
    sequence = sequence if isinstance(sequence, str) else None
    keys = _field(dynamodb, "Keys")
    if not isinstance(keys, Mapping):
        raise InvalidInput("record has no Keys")
    source = _field(document, "EventSource")
    pk, sk = _string_attr(keys.get(layout.PK)), _string_attr(keys.get(layout.SK))
    if (source is not None and source != "aws:dynamodb") or pk is None or sk is None:
        return Change(FOREIGN, None, sequence)
    if sk.startswith(layout.EVENT_PREFIX):
        kind = EVENT
    elif sk == layout.HEAD_SK:
        kind = HEAD
    elif sk.startswith("ALIAS#"):
        kind = ALIAS
    else:
        return Change(FOREIGN, None, sequence)
    if _field(document, "EventName") == "REMOVE":
        kind = TTL if _is_ttl_delete(document) else REMOVE
    return Change(kind, check_identifier("budget", pk), sequence)


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
    change = change_of(document)
    if change.kind == FOREIGN:
        keys = _field(_field(document, "Dynamodb"), "Keys")
        sk = _string_attr(keys.get(layout.SK))
        if sk is None or _string_attr(keys.get(layout.PK)) is None:
            raise InvalidInput("record keys are not this project's (pk, sk): another table?")
        raise InvalidInput(f"record sort key {sk[:40]!r} is not an event, head or alias")
    if change.kind in (REMOVE, TTL):
        return None  # events are never deleted by the app; nothing to project
    return change.budget


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record (as boto3 returns it) in the shape Lambda hands a function: the
    same JSON names plus `eventSourceARN`, `ApproximateCreationDateTime` as a number of seconds
    (possibly fractional) and binary values base64-encoded, as Lambda's JSON carries them."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | set | tuple):
            return [plain(v) for v in value]
        return value

    converted: dict[str, Any] = {k: plain(v) for k, v in record.items()}
    converted["eventSourceARN"] = stream_arn
    return converted
