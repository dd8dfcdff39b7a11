"""DynamoDB Local, the embedded default: `local fetch`, `local start`, and `dev` (DynamoDB
Local, tables and the worker in one command)."""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.cli.output import emit, out
from worker.cli.parsing import Command, Parser
from worker.local import dynamodb_local

GROUPS = {"local": "DynamoDB Local, the embedded default"}


def local_fetch(args: argparse.Namespace) -> int:
    java = dynamodb_local.check_java()
    path = dynamodb_local.fetch()
    emit(
        args,
        {"path": str(path), "java": java},
        lambda: out.print(f"DynamoDB Local in {path} (Java {java})"),
    )
    return 0


def local_start(args: argparse.Namespace) -> int:
    server = dynamodb_local.start(args.port, data_dir=args.data_dir)
    emit(
        args,
        {"endpoint_url": server.endpoint_url, "pid": server.pid},
        lambda: out.print(
            f"DynamoDB Local at {server.endpoint_url} (pid {server.pid}); "
            f"export AWS_ENDPOINT_URL={server.endpoint_url}"
        ),
    )
    return 0


def _start_arguments(start: Parser) -> None:
    start.add_argument("--port", type=int, help="port (default: a free one)")
    where = start.add_mutually_exclusive_group()
    where.add_argument("--in-memory", action="store_true", help="keep data in memory (default)")
    where.add_argument("--data-dir", type=Path, help="keep data in this directory")


def dev(args: argparse.Namespace) -> int:
    from worker.local.dev import run_dev

    run_dev(demo=args.demo, once=args.once, console=out, driver=args.driver)
    return 0


def _dev_arguments(parser: Parser) -> None:
    parser.add_argument(
        "--demo", action="store_true", help="write sample events and show them applied"
    )
    parser.add_argument(
        "--driver",
        choices=["local", "lambda"],
        default="local",
        help="local: the record processor over the MultiLang protocol (default); "
        "lambda: the Lambda handler with the event source mapping's semantics",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="exit after set-up (and the demo) instead of running the worker",
    )


COMMANDS = [
    Command(
        "local fetch",
        local_fetch,
        "check Java and cache DynamoDB Local (idempotent)",
        prints='{"path", "java"}',
    ),
    Command(
        "local start",
        local_start,
        "start DynamoDB Local on loopback in the background",
        _start_arguments,
        prints='{"endpoint_url", "pid"}',
    ),
    Command(
        "dev",
        dev,
        "DynamoDB Local, tables and the worker in one command",
        _dev_arguments,
        json_flag=False,
    ),
]
