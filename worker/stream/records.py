"""Decoding stream records: which budget does a record say changed?

A record's `data` is base64 of the JSON DynamoDB Streams record as the DynamoDB Streams Kinesis
Adapter serialises it (`eventName`, `dynamodb.Keys`, `dynamodb.SequenceNumber`, ...). The
adapter sets the Kinesis partition key to the stream sequence number, not the item key, so the
budget comes from `dynamodb.Keys.pk`. Nothing else in the record is trusted: the projector
re-reads head, pointer and events from the tables.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
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


def budget_of(data_b64: str) -> str | None:
    """The budget a record's data names, None for a record that is not about an event (e.g.
    a REMOVE), or InvalidInput for a malformed record."""
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInput("record data is not base64") from None
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("record data is not JSON") from None
    if not isinstance(document, Mapping):
        raise InvalidInput("record data is not a JSON object")
    dynamodb = _field(document, "Dynamodb")
    if not isinstance(dynamodb, Mapping):
        raise InvalidInput("record has no dynamodb section")
    keys = _field(dynamodb, "Keys")
    if not isinstance(keys, Mapping):
        raise InvalidInput("record has no Keys")
    pk, sk = _string_attr(keys.get(layout.PK)), _string_attr(keys.get(layout.SK))
    if pk is None or sk is None:
        raise InvalidInput("record keys are not this project's (pk, sk): another table?")
    if not sk.startswith(RELEVANT_PREFIXES):
        raise InvalidInput(f"record sort key {sk[:40]!r} is not an event, head or alias")
    if _field(document, "EventName") == "REMOVE":
        return None  # events are never deleted by the app; nothing to project
    return check_identifier("budget", pk)
