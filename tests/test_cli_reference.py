"""docs/CLI.md is what the parser says, so the command reference cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from worker.cli import JSON_OUTPUT, build_parser
from worker.cli_reference import _subcommands, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "CLI.md"


def test_docs_cli_md_is_generated_from_the_parser():
    assert DOC.read_text() == render(), "docs/CLI.md is out of date: run `make docs`"


def test_every_command_and_flag_is_in_the_reference():
    text = DOC.read_text()
    for sub in _subcommands(build_parser()):
        name = sub.prog.removeprefix("budget-worker ")
        assert f"### {name}\n" in text
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert re.search(rf"`{re.escape(option)}`", text), (name, option)


def test_every_command_with_json_output_documents_its_document():
    for sub in _subcommands(build_parser()):
        name = sub.prog.removeprefix("budget-worker ")
        has_json = any("--json" in a.option_strings for a in sub._actions)
        assert has_json == (name in JSON_OUTPUT), name
