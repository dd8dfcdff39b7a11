"""`events import`: many intents, each persisted with the single-event guarantees.

A bad line never stops the others and never writes anything of itself; every failure is
reported with its line number, so the caller can fix and re-run the file (lines that carry an
`event_id` come back as duplicates the second time, so a re-run is safe). Budgets are imported
at once, each budget's lines in file order (its events' ULIDs, and so I1, follow that order).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress

from worker import logs
from worker.engine import pool
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


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    fields: dict[str, Any]


def _budget_key(obj: dict[str, Any]) -> str:
    """Lines are grouped by budget as written (a bad budget id fails on its own line)."""
    budget = obj["budget"]
    return budget if isinstance(budget, str) else json.dumps(budget, sort_keys=True)


def _persist_budget(persister: Persister, lines: list[_Line]) -> ImportReport:
    """One budget's lines, in file order: I1 orders a budget's events by ULID, so a budget's
    lines must never race each other."""
    report = ImportReport()
    for line in lines:
        obj = line.fields
        try:
            result = persister.persist(
                obj["budget"],
                obj["type"],
                obj["transaction_id"],
                obj.get("data"),
                obj.get("event_id"),
            )
        except InvalidInput as exc:
            report.failed.append(LineFailure(line.number, str(exc), invalid=True))
            continue
        except Exception as exc:  # infrastructure: report the line, keep going
            log.warning("import line failed", line=line.number, error=str(exc))
            report.failed.append(LineFailure(line.number, str(exc), invalid=False))
            continue
        if result.status is PersistStatus.DUPLICATE:
            report.duplicate += 1
        elif result.status is PersistStatus.REASSIGNED:
            report.reassigned += 1
        else:
            report.imported += 1
    return report


def import_events(
    persister: Persister, lines: Sequence[str], *, progress: bool = True, workers: int = 1
) -> ImportReport:
    """Persist every line; budgets at once (at most `workers`, on the shared per-budget pool),
    each budget's lines in file order."""
    report = ImportReport()
    by_budget: dict[str, list[_Line]] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = _parse_line(text)
        except InvalidInput as exc:
            report.failed.append(LineFailure(number, str(exc), invalid=True))
            continue
        by_budget.setdefault(_budget_key(obj), []).append(_Line(number, obj))
    show = progress and sys.stderr.isatty()
    with Progress(disable=not show, transient=True) as bar:
        task = bar.add_task("importing events", total=sum(map(len, by_budget.values())))
        outcomes = pool.each(
            lambda group: _persist_budget(persister, group), by_budget.values(), workers
        )
        for done in outcomes:
            bar.advance(task, len(done.item))
            if done.error is not None:  # _persist_budget reports per line; this is a bug
                raise done.error
            assert done.value is not None
            report.imported += done.value.imported
            report.duplicate += done.value.duplicate
            report.reassigned += done.value.reassigned
            report.failed.extend(done.value.failed)
    report.failed.sort(key=lambda f: f.line)
    return report
