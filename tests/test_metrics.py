"""Metrics in CloudWatch Embedded Metric Format: what the record processor counts per batch,
the documents' shape (what CloudWatch needs to extract them), and the off switch."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.test_record_processor import Batch, FakeCheckpointer, FlakyCatchUp, Queue, rec
from worker import metrics
from worker.engine.projector import CatchUpResult
from worker.stream.record_processor import BudgetRecordProcessor


@pytest.fixture
def emitted() -> Any:
    """Metrics configured to EMF, collecting documents instead of printing them."""
    documents: list[dict[str, Any]] = []
    metrics.configure(env={"BUDGET_METRICS": "emf", "BUDGET_METRICS_NAMESPACE": "Test"})
    metrics._current._sink = documents.append  # the sink is the process's; collect here
    yield documents
    metrics.configure(env={})


def values(document: dict[str, Any], name: str) -> list[float]:
    return list(document.get(name, []))


def assert_valid_emf(document: dict[str, Any]) -> None:
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert isinstance(document["_aws"]["Timestamp"], int)
    assert directive["Namespace"] == "Test"
    assert directive["Dimensions"] == [["service"]]
    assert document["service"] == "budget-worker"
    for metric in directive["Metrics"]:
        assert metric["Name"] in metrics.COUNTS + metrics.SECONDS
        assert metric["Name"] in document
    # nothing but the directive, the one dimension and the metrics: never a budget id
    assert set(document) == {"_aws", "service", *(m["Name"] for m in directive["Metrics"])}


def test_one_document_per_batch_with_the_batchs_counts(emitted) -> None:
    class Lagging(FlakyCatchUp):
        def __call__(self, budget: str) -> CatchUpResult:
            self.calls.append(budget)
            if budget in self.failing:
                raise RuntimeError("down")
            return CatchUpResult(budget, applied=3, rejected=1, conflicts=2, lag_seconds=4.5)

    processor = BudgetRecordProcessor(Lagging({"c"}), Queue())
    processor.process_records(
        Batch([rec("a", "1"), rec("b", "2"), rec("c", "3")], FakeCheckpointer())
    )
    (document,) = emitted
    assert_valid_emf(document)
    assert values(document, "EventsApplied") == [6.0]
    assert values(document, "EventsRejected") == [2.0]
    assert values(document, "StepConflicts") == [4.0]
    assert values(document, "CatchUpFailures") == [1.0]
    assert values(document, "BudgetsQueued") == [1.0]
    assert sorted(values(document, "ProjectionLagSeconds")) == [4.5, 4.5]
    assert "CheckpointsHeld" not in document


def test_a_held_checkpoint_is_counted(emitted) -> None:
    processor = BudgetRecordProcessor(FlakyCatchUp({"b"}), Queue(fail=True))
    cp = FakeCheckpointer()
    processor.process_records(Batch([rec("a", "1"), rec("b", "2")], cp))
    processor.process_records(Batch([rec("a", "3")], cp))
    assert cp.taken == []
    assert [values(d, "CheckpointsHeld") for d in emitted] == [[1.0], [1.0]]
    assert [values(d, "CatchUpFailures") for d in emitted] == [[1.0], [1.0]]


def test_counts_from_many_threads_all_arrive(emitted) -> None:
    m = metrics.current()

    def work() -> None:
        for _ in range(1000):
            m.count("EventsApplied")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m.flush()
    assert values(emitted[-1], "EventsApplied") == [8000.0]
    assert m.flush() is None  # nothing new: no empty document


def test_off_by_default_prints_nothing(capsys) -> None:
    m = metrics.configure(env={})
    m.count("EventsApplied", 5)
    assert m.flush() is None
    assert capsys.readouterr().out == ""


def test_emf_on_stdout_is_one_whole_line(capsys) -> None:
    m = metrics.configure(env={"BUDGET_METRICS": "emf"})
    try:
        m.count("DaemonRestarts")
        m.flush()
    finally:
        metrics.configure(env={})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["DaemonRestarts"] == [1.0]


def test_a_child_sends_its_documents_to_the_supervisor_channel() -> None:
    path = str(Path(tempfile.mkdtemp()) / "channel.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    try:
        m = metrics.configure(child=True, env={"BUDGET_METRICS": "emf", metrics.CHANNEL_ENV: path})
        m.count("EventsApplied", 2)
        m.flush()
        document = json.loads(server.recv(1 << 20))
        assert document["EventsApplied"] == [2.0]
    finally:
        server.close()
        metrics.configure(env={})


def test_a_child_without_a_channel_keeps_quiet(capsys) -> None:
    m = metrics.configure(child=True, env={"BUDGET_METRICS": "emf"})
    m.count("EventsApplied")
    assert m.flush() is None
    assert capsys.readouterr().out == ""  # stdout is the MultiLang protocol


def test_unknown_settings_and_names_are_refused() -> None:
    with pytest.raises(ValueError):
        metrics.configure(env={"BUDGET_METRICS": "statsd"})
    m = metrics.Metrics("X", sink=lambda d: None)
    with pytest.raises(ValueError):
        m.count("BudgetId-42")
