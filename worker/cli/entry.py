"""The `budget-worker` entry point: builds the parser from every command module's declarations
and maps each failure onto the contract's exit codes with a one-line reason.

Exit codes: 0 ok, 1 infrastructure failure after retries, 2 invalid input or usage (one line on
stderr, nothing written), 3 stale projection. The error wording belongs here, not to the
library: a `PersistFailed` carries its id, and this words the `--event-id` hint.
"""

from __future__ import annotations

import sys
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker import logs
from worker.cli import catch_up, events, local, proof, reads, stream
from worker.cli.parsing import Command, Parser
from worker.engine.failures import error_code
from worker.errors import BudgetWorkerError, InvalidInput, PersistFailed, StaleProjection

COMMANDS: list[Command] = [
    *events.COMMANDS,
    *catch_up.COMMANDS,
    *reads.COMMANDS,
    *local.COMMANDS,
    *stream.COMMANDS,
    *proof.COMMANDS,
]
GROUPS = {**events.GROUPS, **local.GROUPS}
# The one JSON document each command prints with --json, by command name.
JSON_OUTPUT = {c.name: c.prints for c in COMMANDS if c.prints is not None}
# The order of `budget-worker --help` and docs/CLI.md (a group's commands in the order its
# module declares them): the data's path first, then the worker, then the tooling.
ORDER = (
    "tables",
    "events",
    "catch-up",
    "transactions",
    "rejected",
    "snapshots",
    "status",
    "local",
    "run",
    "replay",
    "redrive",
    "health",
    "simulate",
    "kcl-processor",
    "dev",
)


def build_parser() -> Parser:
    parser = Parser(
        prog="budget-worker",
        description="Keeps a budget app's DynamoDB projections correct when every call can fail.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    groups: dict[str, Any] = {}
    for command in sorted(COMMANDS, key=lambda c: ORDER.index(c.name.split()[0])):
        top, _, leaf = command.name.partition(" ")
        parent = commands
        if leaf:
            if top not in groups:
                group = commands.add_parser(top, help=GROUPS[top], description=GROUPS[top])
                groups[top] = group.add_subparsers(
                    dest="subcommand", metavar="SUBCOMMAND", parser_class=Parser
                )
                groups[top].required = True
            parent = groups[top]
        sub: Parser = parent.add_parser(leaf or top, help=command.help, description=command.help)
        if command.prints is not None:
            sub.epilog = f"--json prints: {command.prints}"
        if command.json_flag:
            sub.add_argument(
                "--json", action="store_true", help="print exactly one JSON document on stdout"
            )
        command.arguments(sub)
        sub.set_defaults(handler=command.run)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point: map every failure onto the contract's exit codes with a one-line reason."""
    args_list = sys.argv[1:] if argv is None else argv
    long_running = args_list[:1] in (["dev"], ["run"], ["kcl-processor"])
    logs.configure("info" if long_running else "warning")
    try:
        args = build_parser().parse_args(args_list)
        args.entry_point = main  # for `simulate --report`'s bad-input corpus
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
