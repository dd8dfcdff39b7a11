"""What amazon_kclpy hands a record processor, built in memory.

The simulation, the bad-input corpus, the benchmarks and the tests drive
`BudgetRecordProcessor` directly, without the MultiLang protocol; these are the shapes it reads
(amazon_kclpy's own message classes take their checkpointer from the protocol's dispatcher, so
they cannot be built alone).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def record_data(
    budget: str, sort_key: str, *, event_name: str = "INSERT", sequence: int | None = None
) -> str:
    """A record's data as the DynamoDB Streams Kinesis Adapter delivers it: the stream record
    as JSON (keys only), base64."""
    dynamodb: dict[str, Any] = {"Keys": {"pk": {"S": budget}, "sk": {"S": sort_key}}}
    if sequence is not None:
        dynamodb["SequenceNumber"] = str(sequence)
        dynamodb["StreamViewType"] = "KEYS_ONLY"
    document = {"eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": dynamodb}
    return base64.b64encode(json.dumps(document).encode()).decode()


@dataclass
class Record:
    data: str
    sequence_number: str
    sub_sequence_number: int = 0


@dataclass
class Batch:
    records: Sequence[Any]
    checkpointer: Any
    millis_behind_latest: int = 0


@dataclass
class RecordingCheckpointer:
    """Takes every checkpoint and remembers the sequence numbers, in order."""

    taken: list[str | None] = field(default_factory=list)

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None:
        self.taken.append(sequence_number)
