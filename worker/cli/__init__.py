"""`budget-worker`: the command-line contract (docs/CLI.md), thin over the modules.

One module per command group, each declaring its commands' parsers next to the commands:
`events` (tables, events), `catch_up`, `reads` (transactions, rejected, snapshots, status),
`local` (DynamoDB Local, dev), `stream` (run, replay, redrive, health, kcl-processor), `proof`
(simulate); `parsing` and `output` are what they share, `entry` builds the parser and maps
failures to exit codes. `--json` prints exactly one JSON document.
"""

from worker.cli.entry import JSON_OUTPUT, build_parser, exit_code, main
from worker.cli.parsing import Parser, UsageError

__all__ = ["JSON_OUTPUT", "Parser", "UsageError", "build_parser", "exit_code", "main"]
