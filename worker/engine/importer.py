"""`events import`: many intents, each persisted with the single-event guarantees.

A bad line never stops the others and never writes anything of itself; every failure is
reported with its line number, so the caller can fix and re-run the file (lines that carry an
`event_id` come back as duplicates the second time, so a re-run is safe).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress

from worker import logs
from worker.engine.persist import Persister, PersistStatus
from worker.errors import InvalidInput

log = logs.get(__name__)

LINE_KEYS = {"budget", "type", "transaction_id", "data", "event_id"}


@dataclass(frozen=True, slots=True)
class LineFailure:
    line: int
    error: str
    invalid: bool


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    duplicate: int = 0
    reassigned: int = 0
    failed: list[LineFailure] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "duplicate": self.duplicate,
            "reassigned": self.reassigned,
            "failed": [{"line": f.line, "error": f.error} for f in self.failed],
        }

    def exit_code(self) -> int:
        if any(f.invalid for f in self.failed):
            return 2
        return 1 if self.failed else 0


def _parse_line(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will parse
        raise InvalidInput(f"not acceptable JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidInput("each line must be a JSON object")
    unknown = sorted(set(obj) - LINE_KEYS)
    if unknown:
        raise InvalidInput(f"unknown key(s): {', '.join(unknown)}")
    for required in ("budget", "type", "transaction_id"):
        if required not in obj:
            raise InvalidInput(f"missing key: {required}")
    if obj.get("event_id") is not None and not isinstance(obj["event_id"], str):
        raise InvalidInput("event_id must be a string")
    return obj


def import_events(
    persister: Persister, lines: Sequence[str], *, progress: bool = True
) -> ImportReport:
    report = ImportReport()
    show = progress and sys.stderr.isatty()
    with Progress(disable=not show, transient=True) as bar:
        task = bar.add_task("importing events", total=len(lines))
        for number, text in enumerate(lines, start=1):
            bar.advance(task)
            if not text.strip():
                continue
            try:
                obj = _parse_line(text)
                result = persister.persist(
                    obj["budget"],
                    obj["type"],
                    obj["transaction_id"],
                    obj.get("data"),
                    obj.get("event_id"),
                )
            except InvalidInput as exc:
                report.failed.append(LineFailure(number, str(exc), invalid=True))
                continue
            except Exception as exc:  # infrastructure: report the line, keep going
                log.warning("import line failed", line=number, error=str(exc))
                report.failed.append(LineFailure(number, str(exc), invalid=False))
                continue
            if result.status is PersistStatus.DUPLICATE:
                report.duplicate += 1
            elif result.status is PersistStatus.REASSIGNED:
                report.reassigned += 1
            else:
                report.imported += 1
    return report
