"""What every command module declares its command with: the `Command` record, the parser that
raises instead of exiting, and the argument types shared by several commands.

argparse (not a framework) keeps usage errors at exit 2 and the output fully under our control;
`Parser.error` raises `UsageError` so that `main` reports every failure the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from worker.errors import InvalidInput
from worker.model.events import check_identifier

BUDGET_HELP = "budget id (at most 128 characters, no control characters)"


class UsageError(InvalidInput):
    """Wrong command-line usage (argparse's message), exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse prints usage and exits by itself; raise instead so that main() reports every
    failure the same way (one line on stderr)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _no_arguments(parser: Parser) -> None:
    """For commands that take none beyond `--json`."""


@dataclass(frozen=True, slots=True)
class Command:
    """One command as its module declares it: `name` is its words after `budget-worker` (a
    group's commands have two), `prints` the one JSON document `--json` prints (shown in
    `--help` and docs/CLI.md), `arguments` adds its arguments after `--json`."""

    name: str
    run: Callable[[argparse.Namespace], int]
    help: str
    arguments: Callable[[Parser], None] = _no_arguments
    prints: str | None = None
    json_flag: bool = True


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


def budget_argument(parser: Parser) -> None:
    """The one positional BUDGET most reading commands take."""
    parser.add_argument("budget", type=budget_id, help=BUDGET_HELP)
