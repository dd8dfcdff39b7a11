"""How commands print: exactly one JSON document with `--json`, rich tables and lines for a
person otherwise (amounts with two decimals, `worker.model.money`, where JSON keeps integer
minor units). Kept apart from the commands so both forms are decided in one place.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

out = Console()


def emit(args: argparse.Namespace, document: dict[str, Any], human: Callable[[], None]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        human()


def summary(line: str, failures: list[tuple[str, str]]) -> None:
    """A one-line summary, then one red line per failure (where, why)."""
    out.print(line)
    for where, error in failures:
        out.print(f"  {where}: {error}", style="red", markup=False)
