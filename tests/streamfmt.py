"""Builders for adapter-format stream records (the DynamoDB Streams record as JSON, base64)."""

from __future__ import annotations

import base64
import json
from typing import Any


def record_json(
    budget: str, sk: str = "HEAD", event_name: str = "MODIFY", sequence: str = "100"
) -> dict[str, Any]:
    return {
        "eventID": f"id-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1700000000,
            "Keys": {"pk": {"S": budget}, "sk": {"S": sk}},
            "SequenceNumber": sequence,
            "SizeBytes": 40,
            "StreamViewType": "KEYS_ONLY",
        },
    }


def b64(document: Any) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.b64encode(raw).decode()
