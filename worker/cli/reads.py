"""The reading commands: `transactions` (validated), `rejected`, `snapshots`, `status`.

Human tables show amounts with two decimals (`worker.model.money`); `--json` keeps integer minor
units, as the contract says.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys

from rich.table import Table

from worker.cli.output import emit, out
from worker.cli.parsing import Command, Parser, budget_argument, budget_id
from worker.cli.stores import store
from worker.engine.projector import Projector
from worker.engine.status import statuses
from worker.engine.validated_read import read_transactions
from worker.model.money import readable, readable_by_name

STATUS_ROWS_PER_TABLE = 50


def transactions(args: argparse.Namespace) -> int:
    read_from = store()
    view = read_transactions(
        read_from, args.budget, projector=None if args.no_catch_up else Projector(read_from)
    )

    def human() -> None:
        table = Table(
            "date",
            "amount",
            "account",
            "category",
            "payee",
            "memo",
            "id",
            title=f"{args.budget} as of {view.as_of_event}",
        )
        for t in view.transactions:
            table.add_row(
                t.date,
                readable(t.amount),
                t.account,
                t.category,
                t.payee or "",
                t.memo or "",
                t.transaction_id,
            )
        out.print(table)

    emit(args, view.as_json(), human)
    return 0


def _transactions_arguments(txns: Parser) -> None:
    budget_argument(txns)
    txns.add_argument(
        "--no-catch-up",
        action="store_true",
        help="fail with exit 3 instead of catching up when behind",
    )


def rejected(args: argparse.Namespace) -> int:
    items = store().rejected(args.budget)

    def human() -> None:
        table = Table("event_id", "reason", title=f"{args.budget}: rejected events")
        for event_id, reason in items:
            table.add_row(event_id, reason)
        out.print(table)

    emit(
        args,
        {"budget": args.budget, "rejected": [{"event_id": e, "reason": r} for e, r in items]},
        human,
    )
    return 0


def snapshots(args: argparse.Namespace) -> int:
    from worker.engine.snapshots import Rebuilder, read_snapshots

    read_from = store()
    if args.rebuild:
        Rebuilder(read_from).rebuild(args.budget)
    view = read_snapshots(read_from, args.budget)

    def human() -> None:
        table = Table(
            "month",
            "income",
            "expenses",
            "net",
            "count",
            "balances",
            "by category",
            "state",
            title=f"{args.budget}: monthly snapshots",
        )
        for entry in view.entries:
            s = entry.snapshot
            state = "fresh" if entry.fresh else "may be out of date"
            if s is None:
                table.add_row(entry.month, "-", "-", "-", "-", "-", "-", "not built yet")
                continue
            table.add_row(
                s.month,
                readable(s.income),
                readable(s.expenses),
                readable(s.net),
                str(s.transaction_count),
                readable_by_name(s.balances),
                readable_by_name(s.by_category),
                state,
            )
        out.print(table)
        if view.dirty_months:
            out.print(
                f"dirty months: {', '.join(view.dirty_months)} "
                "(run with --rebuild, or let the worker rebuild them)"
            )

    emit(args, view.as_json(), human)
    return 0


def _snapshots_arguments(snaps: Parser) -> None:
    budget_argument(snaps)
    snaps.add_argument("--rebuild", action="store_true", help="first rebuild dirty months")


def status(args: argparse.Namespace) -> int:
    found = statuses(store(), args.budget, behind_only=args.behind)
    if args.json:
        # Streamed: still exactly one JSON document, but never every budget in memory at once.
        # Nothing is written before the first status is read (a failure then leaves stdout
        # empty); a failure later still closes the document, and the exit code says 1.
        first = next(found, None)
        sys.stdout.write('{"budgets": [')
        try:
            for i, s in enumerate([] if first is None else itertools.chain([first], found)):
                row = json.dumps(s.as_json(), ensure_ascii=False)
                sys.stdout.write(("" if i == 0 else ", ") + row)
        finally:
            sys.stdout.write("]}\n")
            sys.stdout.flush()
        return 0

    def table() -> Table:
        return Table("budget", "head", "pointer", "behind", "lag (s)", "dirty months", "rejected")

    rows, shown = table(), 0
    for s in found:
        rows.add_row(
            s.budget,
            s.head or "-",
            s.pointer or "-",
            str(s.behind),
            f"{s.lag_seconds:.1f}",
            ", ".join(s.dirty_months),
            str(s.rejected),
        )
        shown += 1
        if shown % STATUS_ROWS_PER_TABLE == 0:  # one page at a time: bounded memory
            out.print(rows)
            rows = table()
    if shown == 0 or rows.row_count:
        out.print(rows)
    return 0


def _status_arguments(stat: Parser) -> None:
    stat.add_argument(
        "budget", nargs="?", type=budget_id, help="one budget (default: every budget)"
    )
    stat.add_argument("--behind", action="store_true", help="only budgets with behind > 0")


COMMANDS = [
    Command(
        "transactions",
        transactions,
        "validated read of a budget's transactions (exit 3 if stale)",
        _transactions_arguments,
        prints='{"budget", "as_of_event", "transactions": [{"transaction_id", "date", '
        '"amount", "account", "category", "payee", "memo", "last_event_id"}]} sorted by date, '
        "then id",
    ),
    Command(
        "rejected",
        rejected,
        "events the projector rejected",
        budget_argument,
        prints='{"budget", "rejected": [{"event_id", "reason"}]}',
    ),
    Command(
        "snapshots",
        snapshots,
        "monthly snapshots",
        _snapshots_arguments,
        prints='{"budget", "dirty_months": [...], "snapshots": [{"month", "income", '
        '"expenses", "net", "by_category", "balances", "transaction_count", "as_of_event", '
        '"fresh"}]}',
    ),
    Command(
        "status",
        status,
        "lag per budget, in events and seconds (budgets listed from the budgets index)",
        _status_arguments,
        prints='{"budgets": [{"budget", "head", "pointer", "behind", "lag_seconds", '
        '"dirty_months", "rejected"}]}; lag_seconds is the age of the oldest unapplied event',
    ),
]
