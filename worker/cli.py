"""`budget-worker`: the command-line contract (docs/CLI.md), thin over the modules.

Exit codes: 0 ok, 1 infrastructure failure after retries, 2 invalid input or usage (one line on
stderr, nothing written), 3 stale projection. `--json` prints exactly one JSON document.
argparse (not a framework) keeps usage errors at exit 2 and the output fully under our control.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from worker import logs, metrics
from worker.config import Settings
from worker.engine import aws
from worker.engine.failures import error_code
from worker.engine.importer import import_events
from worker.engine.persist import Persister
from worker.engine.projector import DEFAULT_BATCH, Projector
from worker.engine.reads import Store
from worker.engine.status import statuses
from worker.engine.tables import create_tables
from worker.engine.validated_read import read_transactions
from worker.errors import BudgetWorkerError, InvalidInput, PersistFailed, StaleProjection
from worker.local import dynamodb_local
from worker.model.events import check_identifier, parse_data_json

out = Console()


class UsageError(InvalidInput):
    """Wrong command-line usage (argparse's message), exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse prints usage and exits by itself; raise instead so that main() reports every
    failure the same way (one line on stderr)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def budget_id(value: str) -> str:
    """argparse type for every BUDGET argument: validated like the persist path does, so a
    bad one is a usage error (exit 2) before anything reaches DynamoDB."""
    try:
        return check_identifier("budget", value)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return number


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?")


def _duration(value: str) -> float:
    """argparse type for `simulate --time-budget`: 90s, 45m, 1h30m, or plain seconds."""
    match = _DURATION.fullmatch(value.strip())
    if not value.strip() or match is None:
        raise argparse.ArgumentTypeError(f"not a duration (like 90s, 45m, 1h30m): {value!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"a time budget must be positive: {value!r}")
    return total


def _emit(args: argparse.Namespace, document: dict[str, Any], human: Callable[[], None]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        human()


def _summary(line: str, failures: list[tuple[str, str]]) -> None:
    """A one-line summary, then one red line per failure (where, why)."""
    out.print(line)
    for where, error in failures:
        out.print(f"  {where}: {error}", style="red", markup=False)


def _store() -> Store:
    settings = Settings.from_env()
    return Store.from_settings(aws.dynamodb(settings), settings)


# -- commands -------------------------------------------------------------------------------


def cmd_tables_create(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    result = create_tables(aws.dynamodb(settings), settings)
    _emit(
        args,
        {"created": result.created, "existing": result.existing, "upgraded": result.upgraded},
        lambda: out.print(
            f"created: {', '.join(result.created) or '-'}; "
            f"existing: {', '.join(result.existing) or '-'}"
        ),
    )
    return 0


def cmd_events_put(args: argparse.Namespace) -> int:
    data = parse_data_json(args.data)
    result = Persister(_store()).persist(
        args.budget, args.type, args.transaction, data, args.event_id
    )
    document = result.as_json()
    requested = document.get("requested_event_id")
    _emit(
        args,
        document,
        lambda: out.print(
            f"{document['status']}: {document['event_id']}"
            + (f" (requested {requested})" if requested else "")
        ),
    )
    return 0


def cmd_events_import(args: argparse.Namespace) -> int:
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
        Persister(_store()), lines, progress=not args.json, workers=Settings.from_env().concurrency
    )

    def human() -> None:
        _summary(
            f"imported {report.imported}, duplicate {report.duplicate}, "
            f"reassigned {report.reassigned}, failed {len(report.failed)}",
            [(f"line {f.line}", f.error) for f in report.failed],
        )

    _emit(args, report.as_json(), human)
    return report.exit_code()


def cmd_events_list(args: argparse.Namespace) -> int:
    store = _store()
    head = store.head(args.budget)
    events = store.events(args.budget)

    def human() -> None:
        table = Table(
            "event_id", "type", "transaction_id", "data", title=f"{args.budget} (head {head})"
        )
        for e in events:
            table.add_row(e.event_id, str(e.type), e.transaction_id, json.dumps(dict(e.data)))
        out.print(table)

    _emit(
        args, {"budget": args.budget, "head": head, "events": [e.as_json() for e in events]}, human
    )
    return 0


def cmd_catch_up(args: argparse.Namespace) -> int:
    if args.all == (args.budget is not None):
        raise UsageError("budget-worker catch-up: give either BUDGET or --all")
    if args.all:
        return _sweep(args)
    result = Projector(_store(), batch=args.batch).catch_up(args.budget)
    _emit(
        args,
        result.as_json(),
        lambda: out.print(
            f"{args.budget}: applied {result.applied}, rejected {result.rejected}, "
            f"pointer {result.pointer}, head {result.head}"
        ),
    )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from worker.engine.snapshots import Rebuilder
    from worker.engine.sweep import SweepResult, sweep

    settings = Settings.from_env()
    store = Store.from_settings(aws.dynamodb(settings), settings)
    workers = args.parallel or settings.concurrency
    projector = Projector(store, batch=args.batch)
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=args.json or not sys.stderr.isatty(),
    )
    with bar:
        task = bar.add_task("listing budgets")

        def progress(total: SweepResult) -> None:
            bar.update(
                task,
                description=f"{total.budgets} budgets, {total.behind} behind, "
                f"{total.dirty} dirty, {total.applied} applied, {len(total.failed)} failed",
            )

        result = sweep(
            store,
            Rebuilder(store).rebuild,
            workers=workers,
            projector=projector,
            progress=progress,
        )

    def human() -> None:
        _summary(
            f"swept {result.budgets} budgets: {result.behind} behind, {result.dirty} dirty "
            f"(snapshots rebuilt), applied {result.applied}, "
            f"rejected {result.rejected}, failed {len(result.failed)}",
            [(f.budget, f.error) for f in result.failed],
        )

    _emit(args, result.as_json(), human)
    return 1 if result.failed else 0


def cmd_transactions(args: argparse.Namespace) -> int:
    store = _store()
    view = read_transactions(
        store, args.budget, projector=None if args.no_catch_up else Projector(store)
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
                str(t.amount),
                t.account,
                t.category,
                t.payee or "",
                t.memo or "",
                t.transaction_id,
            )
        out.print(table)

    _emit(args, view.as_json(), human)
    return 0


def cmd_rejected(args: argparse.Namespace) -> int:
    items = _store().rejected(args.budget)

    def human() -> None:
        table = Table("event_id", "reason", title=f"{args.budget}: rejected events")
        for event_id, reason in items:
            table.add_row(event_id, reason)
        out.print(table)

    _emit(
        args,
        {"budget": args.budget, "rejected": [{"event_id": e, "reason": r} for e, r in items]},
        human,
    )
    return 0


def cmd_snapshots(args: argparse.Namespace) -> int:
    from worker.engine.snapshots import Rebuilder, read_snapshots

    store = _store()
    if args.rebuild:
        Rebuilder(store).rebuild(args.budget)
    view = read_snapshots(store, args.budget)

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
                str(s.income),
                str(s.expenses),
                str(s.net),
                str(s.transaction_count),
                ", ".join(f"{k} {v}" for k, v in sorted(s.balances.items())),
                ", ".join(f"{k} {v}" for k, v in sorted(s.by_category.items())),
                state,
            )
        out.print(table)
        if view.dirty_months:
            out.print(
                f"dirty months: {', '.join(view.dirty_months)} "
                "(run with --rebuild, or let the worker rebuild them)"
            )

    _emit(args, view.as_json(), human)
    return 0


STATUS_ROWS_PER_TABLE = 50


def cmd_status(args: argparse.Namespace) -> int:
    found = statuses(_store(), args.budget, behind_only=args.behind)
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


def cmd_local_fetch(args: argparse.Namespace) -> int:
    java = dynamodb_local.check_java()
    path = dynamodb_local.fetch()
    _emit(
        args,
        {"path": str(path), "java": java},
        lambda: out.print(f"DynamoDB Local in {path} (Java {java})"),
    )
    return 0


def cmd_local_start(args: argparse.Namespace) -> int:
    server = dynamodb_local.start(args.port, data_dir=args.data_dir)
    _emit(
        args,
        {"endpoint_url": server.endpoint_url, "pid": server.pid},
        lambda: out.print(
            f"DynamoDB Local at {server.endpoint_url} (pid {server.pid}); "
            f"export AWS_ENDPOINT_URL={server.endpoint_url}"
        ),
    )
    return 0


def cmd_kcl_processor(args: argparse.Namespace) -> int:
    from worker.stream.runtime import run_kcl_processor

    run_kcl_processor(Settings.from_env())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import threading

    from worker.stream import run

    stop = threading.Event()
    run.install_signal_handlers(stop)
    settings = Settings.from_env()
    # EMF documents on this process's stdout: its own, and its children's via the channel.
    metrics.configure()
    if args.driver == "kcl":
        return run.run_kcl(settings, stop)
    if args.driver == "lambda":
        run.run_lambda(settings, stop)
        return 0
    run.run_local(settings, stop)
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    """A Lambda on-failure destination message: catch up the budgets its range names."""
    from worker.stream import destination, redrive

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {args.file}: {exc}") from None
    batch = destination.parse(text)
    settings = Settings.from_env()
    result = redrive.redrive(
        batch,
        Store.from_settings(aws.dynamodb(settings), settings),
        aws.dynamodb_streams(settings),
        concurrency=settings.concurrency,
    )
    _emit(
        args,
        result.as_json(),
        lambda: _summary(
            f"shard {result.shard_id}: {result.records} records, {len(result.budgets)} "
            f"budgets, {len(result.caught_up)} caught up, {len(result.failed)} failed",
            [(f["budget"], f["error"]) for f in result.failed],
        ),
    )
    return 1 if result.failed else 0


def cmd_replay(args: argparse.Namespace) -> int:
    from worker.stream import replay
    from worker.stream.local_driver import DriverConfig

    if args.at_timestamp is not None:
        target = replay.Target(at_timestamp=replay.parse_timestamp(args.at_timestamp))
    elif args.after_sequence is not None:
        target = replay.Target(after_sequence=replay.parse_sequence(args.after_sequence))
    else:
        target = replay.Target(trim_horizon=True)
    settings = Settings.from_env()
    resets = replay.replay(
        aws.dynamodb(settings),
        aws.dynamodb_streams(settings),
        settings.events_table,
        settings.lease_table,
        target,
        shard_id=args.shard,
        force=args.force,
        # How long a lease must stand still to count as abandoned (local heartbeat age, or
        # KCL's counter watched for this long): the same setting the local driver uses.
        failover_seconds=DriverConfig.from_env().failover_seconds,
    )

    def human() -> None:
        table = Table("shard", "old checkpoint", "new checkpoint")
        for r in resets:
            table.add_row(r.shard_id, r.old or "-", r.new)
        out.print(table)

    _emit(args, {"shards": [r.as_json() for r in resets]}, human)
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from worker.stream import health

    age = health.check(args.max_age)
    _emit(
        args,
        {"healthy": True, "heartbeat_age_seconds": round(age, 1)},
        lambda: out.print(f"healthy: heartbeat {age:.0f}s old"),
    )
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from worker.proof import runner

    logs.configure("critical")  # the simulation provokes failures on purpose: keep it quiet
    errors = Console(stderr=True)
    bar = (
        Progress(
            "{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=errors,
            transient=True,
        )
        if errors.is_terminal
        else None
    )
    jobs = args.jobs or runner.default_jobs()

    def run_one(backend: str, seeds: int, budget: float | None) -> runner.RunSummary:
        task = bar.add_task(f"{backend} seeds", total=seeds) if bar is not None else None
        violations = 0

        def progress(result: runner.SeedResult) -> None:
            nonlocal violations
            report = result.report
            if report.violations:  # said at once, not only at the end of a long run
                violations += 1
                errors.print(
                    f"seed {report.seed} ({backend}) VIOLATION: {'; '.join(report.violations)}"
                    f"\n  reproduce: {runner.reproduce_command(backend, report.seed, args.ops)}",
                    markup=False,
                    highlight=False,
                )
            if bar is not None and task is not None:
                bar.update(task, advance=1, description=f"{backend} seeds, {violations} failing")
            elif not report.violations:
                sys.stderr.write(
                    f"seed {report.seed} ({backend}): ok, {result.seconds:.1f}s, "
                    f"peak RSS {result.peak_rss_mb:.0f} MB\n"
                )
                sys.stderr.flush()

        return runner.run_seeds(
            backend,
            args.start,
            seeds,
            args.ops,
            endpoint=args.endpoint,
            jobs=jobs,
            time_budget=budget,
            progress=progress,
        )

    began = time.monotonic()
    runs: list[runner.RunSummary] = []
    bad_inputs = None
    with runner.sigterm_interrupts(), bar if bar is not None else contextlib.nullcontext():
        runs.append(run_one(args.backend, args.seeds, args.time_budget))
        if args.report and not runs[-1].interrupted:
            other = "local" if args.backend == "moto" else "moto"
            left = None
            if args.time_budget is not None:
                left = max(0.0, args.time_budget - (time.monotonic() - began))
            runs.append(run_one(other, args.other_seeds, left))
    interrupted = any(r.interrupted for r in runs)
    if args.report and not interrupted:
        bad_inputs = runner.run_bad_inputs(main)
        runner.write_report(Path(args.report), runs, bad_inputs)
    document = {
        "runs": [r.as_json() for r in runs],
        "bad_inputs": bad_inputs,
        "interrupted": interrupted,
    }
    failures = [(r, f) for r in runs for f in r.failures]
    bad = [p for v in (bad_inputs or {}).values() for p in v["problems"]]

    def human() -> None:
        for run in runs:
            stopped = (
                ", interrupted"
                if run.interrupted
                else ", time budget reached"
                if run.time_budget_reached
                else ""
            )
            out.print(
                f"{run.backend}: {len(run.seeds)} seeds x {run.ops} operations on {run.jobs} "
                f"jobs, {sum(run.faults.values())} faults injected, "
                f"{sum(run.checks.values())} invariant checks, "
                f"{len(run.failures)} failing seeds, {run.seconds:.0f}s, "
                f"peak RSS {run.peak_rss_mb:.0f} MB{stopped}"
            )
        if bad_inputs is not None:
            tried = sum(v["tried"] for v in bad_inputs.values())
            out.print(f"bad inputs: {tried} tried, {len(bad)} mishandled")
        if args.report and not interrupted:
            out.print(f"report written to {args.report}")

    _emit(args, document, human)
    for run, failure in failures:
        sys.stderr.write(
            f"budget-worker: seed {failure.seed} violated: "
            f"{'; '.join(failure.violations)}; reproduce: "
            f"{run.reproduce(failure.seed)}\n"
        )
    if failures or bad:
        return 1
    return 130 if interrupted else 0


def cmd_dev(args: argparse.Namespace) -> int:
    from worker.local.dev import run_dev

    run_dev(demo=args.demo, once=args.once, console=out, driver=args.driver)
    return 0


# -- parser ---------------------------------------------------------------------------------

BUDGET_HELP = "budget id (at most 128 characters, no control characters)"

# The one JSON document each command prints with --json (shown in --help and docs/CLI.md).
JSON_OUTPUT = {
    "tables create": '{"created": [...], "existing": [...], "upgraded": [...]}; upgraded lists '
    "changes made to an existing events table (the budgets index, listing buckets)",
    "events put": '{"budget", "event_id", "status"} with status created, duplicate or '
    'reassigned (then also "requested_event_id")',
    "events import": '{"imported", "duplicate", "reassigned", "failed": [{"line", "error"}]}; '
    "exit 2 if a line failed validation, 1 if one failed for infrastructure reasons",
    "events list": '{"budget", "head", "events": [{"event_id", "type", "transaction_id", "data"}]}',
    "catch-up": '{"budget", "applied", "rejected", "pointer", "head"}; with --all: '
    '{"budgets", "behind", "dirty", "applied", "rejected", "failed": [{"budget", "error"}]}; '
    "dirty: budgets current but left with dirty markers, whose snapshots were rebuilt",
    "transactions": '{"budget", "as_of_event", "transactions": [{"transaction_id", "date", '
    '"amount", "account", "category", "payee", "memo", "last_event_id"}]} sorted by date, then id',
    "rejected": '{"budget", "rejected": [{"event_id", "reason"}]}',
    "snapshots": '{"budget", "dirty_months": [...], "snapshots": [{"month", "income", '
    '"expenses", "net", "by_category", "balances", "transaction_count", "as_of_event", '
    '"fresh"}]}',
    "status": '{"budgets": [{"budget", "head", "pointer", "behind", "lag_seconds", '
    '"dirty_months", "rejected"}]}; lag_seconds is the age of the oldest unapplied event',
    "replay": '{"shards": [{"shard_id", "old", "new"}]}',
    "redrive": '{"shard_id", "records", "budgets": [...], "caught_up": [...], "failed": '
    '[{"budget", "error"}]}; exit 1 if a budget failed, or if the stream no longer holds the '
    "range (then run catch-up --all)",
    "local fetch": '{"path", "java"}',
    "local start": '{"endpoint_url", "pid"}',
    "health": '{"healthy", "heartbeat_age_seconds"}',
    "simulate": '{"runs": [{"backend", "seeds", "first_seed", "ops_per_seed", "seconds", '
    '"operations", "faults", "checks", "paths", "violations"}], "bad_inputs"}; paths counts '
    "the failure paths and pre-emptions a run exercised",
}


def build_parser() -> Parser:
    parser = Parser(
        prog="budget-worker",
        description="Keeps a budget app's DynamoDB projections correct when every call can fail.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    def command(
        parent: Any,
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        *,
        json_flag: bool = True,
    ) -> Parser:
        sub: Parser = parent.add_parser(name, help=help_text, description=help_text)
        shape = JSON_OUTPUT.get(sub.prog.removeprefix(f"{parser.prog} "))
        if shape is not None:
            sub.epilog = f"--json prints: {shape}"
        if json_flag:
            sub.add_argument(
                "--json", action="store_true", help="print exactly one JSON document on stdout"
            )
        sub.set_defaults(handler=handler)
        return sub

    def group(name: str, help_text: str) -> Any:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        nested = sub.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", parser_class=Parser)
        nested.required = True
        return nested

    tables = group("tables", "manage the DynamoDB tables")
    command(
        tables,
        "create",
        cmd_tables_create,
        "create the events and projections tables if absent (idempotent)",
    )

    events = group("events", "persist and list events")
    put = command(
        events,
        "put",
        cmd_events_put,
        "persist one event exactly once (retry with the same --event-id)",
    )
    put.add_argument("budget", type=budget_id, help=BUDGET_HELP)
    put.add_argument(
        "--type", required=True, help="TransactionCreated, TransactionUpdated or TransactionDeleted"
    )
    put.add_argument("--transaction", required=True, help="transaction id")
    put.add_argument("--data", help="transaction fields as a JSON object (at most 16 KiB)")
    put.add_argument("--event-id", help="ULID idempotency key (generated if absent)")
    imp = command(
        events, "import", cmd_events_import, "persist many events, one JSON object per line"
    )
    imp.add_argument("file", help="JSON lines file, or - for stdin")
    lst = command(events, "list", cmd_events_list, "the budget's events in order")
    lst.add_argument("budget", type=budget_id, help=BUDGET_HELP)

    catch = command(
        commands,
        "catch-up",
        cmd_catch_up,
        "run the projector for one budget until pointer = head, or for every budget behind",
    )
    catch.add_argument("budget", nargs="?", type=budget_id, help=BUDGET_HELP)
    catch.add_argument(
        "--all",
        action="store_true",
        help="the sweep: every budget that is behind, found through the budgets index "
        "(recovery after an outage longer than the stream's retention), and the snapshots "
        "of every budget left with dirty markers; exit 1 if any failed",
    )
    catch.add_argument(
        "--parallel",
        type=positive_int,
        metavar="N",
        help="with --all: budgets at once (default BUDGET_CONCURRENCY)",
    )
    catch.add_argument(
        "--batch",
        type=positive_int,
        metavar="N",
        default=DEFAULT_BATCH,
        help="events per conditional transaction (1 = one event per step); default "
        f"{DEFAULT_BATCH}, chosen by measurement (BENCHMARKS.md); DynamoDB's 100-item and "
        "4 MB limits shorten a run further",
    )
    txns = command(
        commands,
        "transactions",
        cmd_transactions,
        "validated read of a budget's transactions (exit 3 if stale)",
    )
    txns.add_argument("budget", type=budget_id, help=BUDGET_HELP)
    txns.add_argument(
        "--no-catch-up",
        action="store_true",
        help="fail with exit 3 instead of catching up when behind",
    )
    rej = command(commands, "rejected", cmd_rejected, "events the projector rejected")
    rej.add_argument("budget", type=budget_id, help=BUDGET_HELP)
    snaps = command(commands, "snapshots", cmd_snapshots, "monthly snapshots")
    snaps.add_argument("budget", type=budget_id, help=BUDGET_HELP)
    snaps.add_argument("--rebuild", action="store_true", help="first rebuild dirty months")
    stat = command(
        commands,
        "status",
        cmd_status,
        "lag per budget, in events and seconds (budgets listed from the budgets index)",
    )
    stat.add_argument(
        "budget", nargs="?", type=budget_id, help="one budget (default: every budget)"
    )
    stat.add_argument("--behind", action="store_true", help="only budgets with behind > 0")

    local = group("local", "DynamoDB Local, the embedded default")
    command(local, "fetch", cmd_local_fetch, "check Java and cache DynamoDB Local (idempotent)")
    start = command(
        local, "start", cmd_local_start, "start DynamoDB Local on loopback in the background"
    )
    start.add_argument("--port", type=int, help="port (default: a free one)")
    where = start.add_mutually_exclusive_group()
    where.add_argument("--in-memory", action="store_true", help="keep data in memory (default)")
    where.add_argument("--data-dir", type=Path, help="keep data in this directory")

    run_cmd = command(
        commands,
        "run",
        cmd_run,
        "the long-running worker (local stream driver, the Lambda handler, or the KCL "
        "MultiLangDaemon)",
        json_flag=False,
    )
    run_cmd.add_argument(
        "--driver",
        choices=["local", "kcl", "lambda"],
        default="local",
        help="local: read DynamoDB Local's stream in this process (default); "
        "kcl: run the Java MultiLangDaemon launcher (production image); "
        "lambda: feed DynamoDB Local's stream to the Lambda handler in Lambda's event shape "
        "with the event source mapping's semantics (BUDGET_LAMBDA_* tune it)",
    )

    rep = command(
        commands,
        "replay",
        cmd_replay,
        "reset stream checkpoints in the lease table so the worker re-reads the stream",
    )
    position = rep.add_mutually_exclusive_group(required=True)
    position.add_argument("--trim-horizon", action="store_true", help="from the oldest record")
    position.add_argument("--at-timestamp", metavar="ISO8601", help="from this moment on")
    position.add_argument("--after-sequence", metavar="N", help="after this sequence number")
    rep.add_argument("--shard", metavar="ID", help="only this shard")
    rep.add_argument("--force", action="store_true", help="even while leases are live")

    red = command(
        commands,
        "redrive",
        cmd_redrive,
        "catch up the budgets named in the stream range of a Lambda on-failure destination "
        "message (while the stream still holds it)",
    )
    red.add_argument(
        "file",
        help="the message (as the destination received it, or SQS receive-message output), "
        "or - for stdin",
    )

    hc = command(
        commands,
        "health",
        cmd_health,
        "exit 0 if the running worker's heartbeat is recent (container health check)",
    )
    hc.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")

    sim = command(
        commands,
        "simulate",
        cmd_simulate,
        "deterministic fault-injection simulation over many seeds (exit 1 on a violation)",
    )
    sim.add_argument("--backend", choices=["moto", "local"], default="moto")
    sim.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    sim.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    sim.add_argument("--ops", type=int, default=40, help="operations per seed (default 40)")
    sim.add_argument("--endpoint", help="a running DynamoDB Local for --backend local")
    sim.add_argument(
        "--report",
        metavar="FILE",
        help="also run the other backend and the bad-input corpus, and write "
        "the reliability report (docs/RELIABILITY.md)",
    )
    sim.add_argument(
        "--other-seeds",
        type=int,
        default=5,
        help="seeds on the other backend with --report (default 5)",
    )
    sim.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="worker processes (default: one per core); a seed's result does not depend on it",
    )
    sim.add_argument(
        "--time-budget",
        type=_duration,
        metavar="DURATION",
        help="run as many seeds as fit in this time (e.g. 90s, 45m, 1h30m)",
    )

    command(
        commands,
        "kcl-processor",
        cmd_kcl_processor,
        "the executable the MultiLangDaemon spawns (MultiLang protocol on stdin/stdout)",
        json_flag=False,
    )

    dev = command(
        commands,
        "dev",
        cmd_dev,
        "DynamoDB Local, tables and the worker in one command",
        json_flag=False,
    )
    dev.add_argument(
        "--demo", action="store_true", help="write sample events and show them applied"
    )
    dev.add_argument(
        "--driver",
        choices=["local", "lambda"],
        default="local",
        help="local: the record processor over the MultiLang protocol (default); "
        "lambda: the Lambda handler with the event source mapping's semantics",
    )
    dev.add_argument(
        "--once",
        action="store_true",
        help="exit after set-up (and the demo) instead of running the worker",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point: map every failure onto the contract's exit codes with a one-line reason."""
    args_list = sys.argv[1:] if argv is None else argv
    long_running = args_list[:1] in (["dev"], ["run"], ["kcl-processor"])
    logs.configure("info" if long_running else "warning")
    try:
        args = build_parser().parse_args(args_list)
        code = int(args.handler(args))
    except PersistFailed as exc:
        # The library names the id; the CLI says how to pass it back.
        _fail(f"{exc} (pass it as --event-id {exc.retry_event_id})")
        code = exit_code(exc)
    except BudgetWorkerError as exc:
        _fail(str(exc))
        code = exit_code(exc)
    except ClientError as exc:
        code = 1
        if error_code(exc) == "ResourceNotFoundException":
            _fail(
                f"a table is missing ({exc.response['Error'].get('Message', '')}); "
                "run `budget-worker tables create`"
            )
        else:
            _fail(f"DynamoDB error {error_code(exc)}: {exc}")
    except BotoCoreError as exc:
        code = 1
        _fail(f"cannot reach DynamoDB: {exc}")
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug: say so in one line, keep the traceback in the log
        logs.get(__name__).exception("unexpected error")
        _fail(f"unexpected error: {type(exc).__name__}: {exc}")
        code = 1
    sys.exit(code)


def exit_code(exc: BudgetWorkerError) -> int:
    """The contract's exit code for each error family: 2 bad input, 3 stale, 1 the rest."""
    if isinstance(exc, InvalidInput):
        return 2
    if isinstance(exc, StaleProjection):
        return 3
    return 1


def _fail(message: str) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    sys.stderr.write(f"budget-worker: {first}\n")
