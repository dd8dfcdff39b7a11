"""What amazon_kclpy hands a record processor, built in memory.

The simulation, the bad-input corpus, the benchmarks and the tests drive
`BudgetRecordProcessor` directly, without the MultiLang protocol; these are the shapes it reads
(amazon_kclpy's own message classes take their checkpointer from the protocol's dispatcher, so
they cannot be built alone). A record's `data` comes from `worker.stream.records.encode`, as
the local driver makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


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
