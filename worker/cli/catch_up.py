"""`catch-up`: run the projector for one budget, or the sweep over every budget (`--all`)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from worker.cli.output import emit, out, summary
from worker.cli.parsing import BUDGET_HELP, Command, Parser, UsageError, budget_id, positive_int
from worker.cli.stores import store
from worker.config import Settings
from worker.engine import aws
from worker.engine.projector import DEFAULT_BATCH, Projector
from worker.engine.reads import Store


def catch_up(args: argparse.Namespace) -> int:
    if args.all == (args.budget is not None):
        raise UsageError("budget-worker catch-up: give either BUDGET or --all")
    if args.all:
        return _sweep(args)
    result = Projector(store(), batch=args.batch).catch_up(args.budget)
    emit(
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
    swept = Store.from_settings(aws.dynamodb(settings), settings)
    workers = args.parallel or settings.concurrency
    projector = Projector(swept, batch=args.batch)
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
            swept,
            Rebuilder(swept).rebuild,
            workers=workers,
            projector=projector,
            progress=progress,
        )

    def human() -> None:
        summary(
            f"swept {result.budgets} budgets: {result.behind} behind, {result.dirty} dirty "
            f"(snapshots rebuilt), applied {result.applied}, "
            f"rejected {result.rejected}, failed {len(result.failed)}",
            [(f.budget, f.error) for f in result.failed],
        )

    emit(args, result.as_json(), human)
    return 1 if result.failed else 0


def _arguments(catch: Parser) -> None:
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


COMMANDS = [
    Command(
        "catch-up",
        catch_up,
        "run the projector for one budget until pointer = head, or for every budget behind",
        _arguments,
        prints='{"budget", "applied", "rejected", "pointer", "head"}; with --all: '
        '{"budgets", "behind", "dirty", "applied", "rejected", "failed": [{"budget", "error"}]}; '
        "dirty: budgets current but left with dirty markers, whose snapshots were rebuilt",
    ),
]
