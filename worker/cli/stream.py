"""The stream worker's commands: `run`, `kcl-processor` (what the MultiLangDaemon spawns),
`replay` and `redrive` (reading a stretch of the stream again), `health`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from worker import metrics
from worker.cli.output import emit, out, summary
from worker.cli.parsing import Command, Parser
from worker.config import Settings
from worker.engine import aws
from worker.engine.reads import Store
from worker.errors import InvalidInput


def kcl_processor(args: argparse.Namespace) -> int:
    from worker.stream.runtime import run_kcl_processor

    run_kcl_processor(Settings.from_env())
    return 0


def run(args: argparse.Namespace) -> int:
    import threading

    from worker.stream import run as runs

    stop = threading.Event()
    runs.install_signal_handlers(stop)
    settings = Settings.from_env()
    # EMF documents on this process's stdout: its own, and its children's via the channel.
    metrics.configure()
    if args.driver == "kcl":
        return runs.run_kcl(settings, stop)
    if args.driver == "lambda":
        runs.run_lambda(settings, stop)
        return 0
    runs.run_local(settings, stop)
    return 0


def _run_arguments(run_cmd: Parser) -> None:
    run_cmd.add_argument(
        "--driver",
        choices=["local", "kcl", "lambda"],
        default="local",
        help="local: read DynamoDB Local's stream in this process (default); "
        "kcl: run the Java MultiLangDaemon launcher (production image); "
        "lambda: feed DynamoDB Local's stream to the Lambda handler in Lambda's event shape "
        "with the event source mapping's semantics (BUDGET_LAMBDA_* tune it)",
    )


def redrive(args: argparse.Namespace) -> int:
    """A Lambda on-failure destination message: catch up the budgets its range names."""
    from worker.stream import destination
    from worker.stream import redrive as redrives

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {args.file}: {exc}") from None
    batch = destination.parse(text)
    settings = Settings.from_env()
    result = redrives.redrive(
        batch,
        Store.from_settings(aws.dynamodb(settings), settings),
        aws.dynamodb_streams(settings),
        concurrency=settings.concurrency,
    )
    emit(
        args,
        result.as_json(),
        lambda: summary(
            f"shard {result.shard_id}: {result.records} records, {len(result.budgets)} "
            f"budgets, {len(result.caught_up)} caught up, {len(result.failed)} failed",
            [(f["budget"], f["error"]) for f in result.failed],
        ),
    )
    return 1 if result.failed else 0


def _redrive_arguments(red: Parser) -> None:
    red.add_argument(
        "file",
        help="the message (as the destination received it, or SQS receive-message output), "
        "or - for stdin",
    )


def replay(args: argparse.Namespace) -> int:
    from worker.stream import replay as replays
    from worker.stream.local_driver import DriverConfig

    if args.at_timestamp is not None:
        target = replays.Target(at_timestamp=replays.parse_timestamp(args.at_timestamp))
    elif args.after_sequence is not None:
        target = replays.Target(after_sequence=replays.parse_sequence(args.after_sequence))
    else:
        target = replays.Target(trim_horizon=True)
    settings = Settings.from_env()
    resets = replays.replay(
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

    emit(args, {"shards": [r.as_json() for r in resets]}, human)
    return 0


def _replay_arguments(rep: Parser) -> None:
    position = rep.add_mutually_exclusive_group(required=True)
    position.add_argument("--trim-horizon", action="store_true", help="from the oldest record")
    position.add_argument("--at-timestamp", metavar="ISO8601", help="from this moment on")
    position.add_argument("--after-sequence", metavar="N", help="after this sequence number")
    rep.add_argument("--shard", metavar="ID", help="only this shard")
    rep.add_argument("--force", action="store_true", help="even while leases are live")


def health(args: argparse.Namespace) -> int:
    from worker.stream import health as healths

    age = healths.check(args.max_age)
    emit(
        args,
        {"healthy": True, "heartbeat_age_seconds": round(age, 1)},
        lambda: out.print(f"healthy: heartbeat {age:.0f}s old"),
    )
    return 0


def _health_arguments(hc: Parser) -> None:
    hc.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")


COMMANDS = [
    Command(
        "run",
        run,
        "the long-running worker (local stream driver, the Lambda handler, or the KCL "
        "MultiLangDaemon)",
        _run_arguments,
        json_flag=False,
    ),
    Command(
        "replay",
        replay,
        "reset stream checkpoints in the lease table so the worker re-reads the stream",
        _replay_arguments,
        prints='{"shards": [{"shard_id", "old", "new"}]}',
    ),
    Command(
        "redrive",
        redrive,
        "catch up the budgets named in the stream range of a Lambda on-failure destination "
        "message (while the stream still holds it)",
        _redrive_arguments,
        prints='{"shard_id", "records", "budgets": [...], "caught_up": [...], "failed": '
        '[{"budget", "error"}]}; exit 1 if a budget failed, or if the stream no longer holds '
        "the range (then run catch-up --all)",
    ),
    Command(
        "health",
        health,
        "exit 0 if the running worker's heartbeat is recent (container health check)",
        _health_arguments,
        prints='{"healthy", "heartbeat_age_seconds"}',
    ),
    Command(
        "kcl-processor",
        kcl_processor,
        "the executable the MultiLangDaemon spawns (MultiLang protocol on stdin/stdout)",
        json_flag=False,
    ),
]
