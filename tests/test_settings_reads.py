"""Every setting is read through `worker/config.py` (docs/ARCHITECTURE.md): another module may
hand the environment on whole (to a child process, or to config itself) or set a variable for
its children, but never read one, so each setting has one name, one default and one parser."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {ROOT / "worker" / "config.py"}
# What a module may do with os.environ besides passing it on whole.
WRITES = {"update", "pop", "copy"}


def reads_of_the_environment(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(path.parents[1])}:{getattr(node, 'lineno', '?')}"
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ("environ", "getenv") for alias in node.names)
        ):
            found.append(f"{where} imports os.environ/getenv by name")
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        if node.value.id != "os" or node.attr not in ("environ", "getenv", "environb"):
            continue
        parent = parents.get(node)
        if node.attr in ("getenv", "environb"):
            found.append(f"{where} os.{node.attr}")
        elif isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Load):
            found.append(f"{where} os.environ[...]")
        elif isinstance(parent, ast.Attribute) and parent.attr not in WRITES:
            found.append(f"{where} os.environ.{parent.attr}")
        elif isinstance(parent, ast.IfExp | ast.Compare):
            found.append(f"{where} os.environ used as a mapping to read")
    return found


def test_only_config_reads_the_environment() -> None:
    files = [
        p
        for folder in ("worker", "benchmarks")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if p not in ALLOWED
    ]
    assert [read for p in files for read in reads_of_the_environment(p)] == []


def test_the_check_finds_a_read(tmp_path: Path) -> None:
    """The check itself can fail: each way of reading a variable is reported."""
    bad = tmp_path / "worker" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "import os\n"
        "a = os.environ.get('A')\n"
        "b = os.environ['B']\n"
        "c = os.getenv('C')\n"
        "d = 'D' in os.environ\n"
        "e = os.environ if a else {}\n"
        "os.environ['F'] = 'ok'\n"  # a write, for the children: allowed
        "g = {**os.environ, 'G': '1'}\n"  # passed on whole: allowed
    )
    assert len(reads_of_the_environment(bad)) == 5


def test_tool_settings_read_their_variables_with_defaults() -> None:
    from worker.config import ToolSettings

    assert ToolSettings.from_env({}) == ToolSettings(cache_dir=ToolSettings().cache_dir)
    tools = ToolSettings.from_env(
        {
            "XDG_CACHE_HOME": "/xdg",
            "BUDGET_POLL_SECONDS": "0.5",
            "BUDGET_SHARD_END_ATTEMPTS": "2",
            "BUDGET_LAMBDA_BATCH_SIZE": "10",
            "BUDGET_METRICS": "EMF",
            "AWS_PROFILE": "dev",
        }
    )
    assert tools.cache_dir == Path("/xdg/budget-worker")
    assert tools.poll_seconds == 0.5 and tools.lease_failover_seconds is None
    assert tools.shard_end_attempts == 2 and tools.metrics == "emf" and tools.aws_credentials
    assert tools.lambda_esm == {"BUDGET_LAMBDA_BATCH_SIZE": "10"}
    both = {"XDG_CACHE_HOME": "/xdg", "BUDGET_CACHE_DIR": "/mine"}
    assert ToolSettings.from_env(both).cache_dir == Path("/mine")


def test_a_bad_tool_setting_is_refused_in_one_line() -> None:
    import pytest

    from worker.config import ToolSettings
    from worker.errors import InvalidInput

    with pytest.raises(InvalidInput, match="BUDGET_SHARD_END_ATTEMPTS must be a whole number"):
        ToolSettings.from_env({"BUDGET_SHARD_END_ATTEMPTS": "many"})
