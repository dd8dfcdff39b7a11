"""Where data comes in: `tables create`, `events put`, `events import`, `events list`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table

from worker.cli.output import emit, out, summary
from worker.cli.parsing import BUDGET_HELP, Command, Parser, budget_argument, budget_id
from worker.cli.stores import store
from worker.config import Settings
from worker.engine import aws
from worker.engine.importer import import_events
from worker.engine.persist import Persister
from worker.engine.tables import create_tables
from worker.errors import InvalidInput
from worker.model.events import parse_data_json

GROUPS = {"tables": "manage the DynamoDB tables", "events": "persist and list events"}


def tables_create(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    result = create_tables(aws.dynamodb(settings), settings)
    emit(
        args,
        {"created": result.created, "existing": result.existing, "upgraded": result.upgraded},
        lambda: out.print(
            f"created: {', '.join(result.created) or '-'}; "
            f"existing: {', '.join(result.existing) or '-'}"
        ),
    )
    return 0


def events_put(args: argparse.Namespace) -> int:
    data = parse_data_json(args.data)
    result = Persister(store()).persist(
        args.budget, args.type, args.transaction, data, args.event_id
    )
    document = result.as_json()
    requested = document.get("requested_event_id")
    emit(
        args,
        document,
        lambda: out.print(
            f"{document['status']}: {document['event_id']}"
            + (f" (requested {requested})" if requested else "")
        ),
    )
    return 0


def _put_arguments(put: Parser) -> None:
    put.add_argument("budget", type=budget_id, help=BUDGET_HELP)
    put.add_argument(
        "--type", required=True, help="TransactionCreated, TransactionUpdated or TransactionDeleted"
    )
    put.add_argument("--transaction", required=True, help="transaction id")
    put.add_argument("--data", help="transaction fields as a JSON object (at most 16 KiB)")
    put.add_argument("--event-id", help="ULID idempotency key (generated if absent)")


def events_import(args: argparse.Namespace) -> int:
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {args.file}: {exc}") from None
    # Split on newlines only: JSON strings may hold U+2028 and friends, which splitlines()
    # would treat as line breaks.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    report = import_events(
        Persister(store()), lines, progress=not args.json, workers=Settings.from_env().concurrency
    )

    def human() -> None:
        summary(
            f"imported {report.imported}, duplicate {report.duplicate}, "
            f"reassigned {report.reassigned}, failed {len(report.failed)}",
            [(f"line {f.line}", f.error) for f in report.failed],
        )

    emit(args, report.as_json(), human)
    return report.exit_code()


def _import_arguments(imp: Parser) -> None:
    imp.add_argument("file", help="JSON lines file, or - for stdin")


def events_list(args: argparse.Namespace) -> int:
    events_store = store()
    head = events_store.head(args.budget)
    events = events_store.events(args.budget)

    def human() -> None:
        table = Table(
            "event_id", "type", "transaction_id", "data", title=f"{args.budget} (head {head})"
        )
        for e in events:
            table.add_row(e.event_id, str(e.type), e.transaction_id, json.dumps(dict(e.data)))
        out.print(table)

    emit(
        args, {"budget": args.budget, "head": head, "events": [e.as_json() for e in events]}, human
    )
    return 0


COMMANDS = [
    Command(
        "tables create",
        tables_create,
        "create the events and projections tables if absent (idempotent)",
        prints='{"created": [...], "existing": [...], "upgraded": [...]}; upgraded lists '
        "changes made to an existing events table (the budgets index, listing buckets)",
    ),
    Command(
        "events put",
        events_put,
        "persist one event exactly once (retry with the same --event-id)",
        _put_arguments,
        prints='{"budget", "event_id", "status"} with status created, duplicate or '
        'reassigned (then also "requested_event_id")',
    ),
    Command(
        "events import",
        events_import,
        "persist many events, one JSON object per line",
        _import_arguments,
        prints='{"imported", "duplicate", "reassigned", "failed": [{"line", "error"}]}; '
        "exit 2 if a line failed validation, 1 if one failed for infrastructure reasons",
    ),
    Command(
        "events list",
        events_list,
        "the budget's events in order",
        budget_argument,
        prints='{"budget", "head", "events": [{"event_id", "type", "transaction_id", "data"}]}',
    ),
]
