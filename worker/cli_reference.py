"""docs/CLI.md, generated from the argparse definitions so the reference cannot drift.

`make docs` (or `python -m worker.cli_reference > docs/CLI.md`) rewrites it; a test fails when
the committed file differs from what the parser says. The prose around the generated part (exit
codes, configuration, formats) lives here, next to the generator, in one place.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator

from worker.cli import Parser, build_parser

INTRO = """\
# Command reference: `budget-worker`

Generated from the command's own argument definitions by `make docs`
(`python -m worker.cli_reference`); `tests/test_cli_reference.py` fails if this file and the
parser disagree. Do not edit by hand.

After `make setup`, the command is `.venv/bin/budget-worker` (or `python -m worker`).

## Conventions

- Every command that prints data accepts `--json` and then prints exactly one JSON document on
  stdout. Human output (tables, progress) is the default.
- Exit codes: `0` ok; `1` failure after retries (infrastructure); `2` invalid input or usage (a
  one-line reason on stderr, nothing written); `3` stale: the projection is behind and could not
  be brought up to date (stderr names pointer and head).
- An event's `--data` is a JSON object of at most 16 KiB; a transaction id at most 128
  characters; amounts are integers in minor units (cents); dates are `YYYY-MM-DD`; months
  `YYYY-MM`; event ids are ULIDs.
- Configuration comes from the environment: `AWS_REGION`, `AWS_ENDPOINT_URL` /
  `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`, `BUDGET_EVENTS_TABLE`
  (default `budget-events`), `BUDGET_PROJECTIONS_TABLE` (default `budget-projections`),
  `BUDGET_LEASE_TABLE` (default `budget-worker`), `BUDGET_RETRY_QUEUE_URL` (optional),
  `BUDGET_CONCURRENCY` (budgets at once: a stream batch, `events import`, the sweep),
  `BUDGET_SNAPSHOT_DELAY` (seconds before the stream worker rebuilds a caught-up budget's
  snapshots; 0: at once),
  `BUDGET_METRICS` (`off` or `emf`) and `BUDGET_METRICS_NAMESPACE` (default `BudgetWorker`); the
  README's configuration table lists the rest.
- `events import FILE` reads one JSON object per line:
  `{"budget", "type", "transaction_id", "data", "event_id"?}`.
- Snapshot figures, per month `M`: `income` = sum of amounts > 0 dated in `M`; `expenses` = sum
  of amounts < 0 dated in `M`; `net` = income + expenses; `by_category` = sum per category of
  amounts dated in `M`; `balances` = per account, the sum of all amounts dated on or before the
  last day of `M`; `transaction_count` = transactions dated in `M`. Months run from the earliest
  to the latest holding a transaction, empty months included; a month in `dirty_months` (or
  after one) may be out of date and is reported with `"fresh": false`.
"""


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[Parser]:
    """Every leaf command, depth first, in definition order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                nested = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
                if nested:
                    yield from _subcommands(sub)
                else:
                    yield sub


def _argument(action: argparse.Action) -> str:
    metavar = action.metavar if isinstance(action.metavar, str) else None
    if action.option_strings:
        name = ", ".join(f"`{o}`" for o in action.option_strings)
        if action.nargs != 0:
            name += f" `{metavar or action.dest.upper()}`"
    else:
        name = f"`{(metavar or action.dest).upper()}`"
        if action.nargs == "?":
            name += " (optional)"
    details = [action.help or ""]
    if action.choices:
        details.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.required and action.option_strings:
        details.append("required")
    if action.default not in (None, False, argparse.SUPPRESS) and action.nargs != 0:
        details.append(f"default `{action.default}`")
    return f"| {name} | {'; '.join(d for d in details if d)} |"


def _exclusive(parser: argparse.ArgumentParser) -> list[str]:
    groups = []
    for group in parser._mutually_exclusive_groups:
        names = " / ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
        groups.append(f"{'Exactly' if group.required else 'At most'} one of {names}.")
    return groups


def render() -> str:
    parser = build_parser()
    lines = [INTRO, "## Commands", ""]
    leaves = list(_subcommands(parser))
    for sub in leaves:
        name = sub.prog.removeprefix(f"{parser.prog} ")
        lines.append(f"- [`{name}`](#{name.replace(' ', '-')}): {sub.description}")
    for sub in leaves:
        name = sub.prog.removeprefix(f"{parser.prog} ")
        usage = " ".join(sub.format_usage().removeprefix("usage: ").split())
        lines += ["", f"### {name}", "", f"{sub.description}.", "", "```", usage, "```", ""]
        arguments = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
        if arguments:
            lines += ["| argument | meaning |", "|---|---|"]
            lines += [_argument(a) for a in arguments]
            lines.append("")
        for group in _exclusive(sub):
            lines += [group, ""]
        if sub.epilog:
            lines += [f"`--json` prints: `{sub.epilog.removeprefix('--json prints: ')}`", ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
