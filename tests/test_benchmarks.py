"""The benchmarks stand on one harness (benchmarks/harness.py): each imports, none starts its
own server or writes its own results file, and the results file keeps its format."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from benchmarks import harness

SCRIPTS = [
    "benchmarks.projector",
    "benchmarks.throughput",
    "benchmarks.end_to_end",
    "benchmarks.startup",
]


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_benchmark_imports_and_uses_the_harness(name: str) -> None:
    module = importlib.import_module(name)
    source = Path(module.__file__ or "").read_text()
    assert "from benchmarks import harness" in source
    for own in ("dynamodb_local.start", "write_text(", "def raw_loop", "def percentile"):
        assert own not in source, f"{name} has its own {own}"


def test_results_are_written_as_indented_json(tmp_path: Path) -> None:
    path = tmp_path / "results" / "x.json"
    harness.write_results(path, {"when": "now", "runs": [1, 2]})
    assert path.read_text() == json.dumps({"when": "now", "runs": [1, 2]}, indent=2) + "\n"


def test_a_history_is_ordered_and_starts_with_a_create() -> None:
    events = harness.history("b", 9, harness.base_id())
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)
    assert str(events[0].type) == "TransactionCreated" and events[0].data["amount"] == 0
