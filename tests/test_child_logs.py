"""`kcl-processor`'s logs under the MultiLang protocol: the KCL daemon logs every stderr line of
its children as an ERROR, so info lines must not go there; they reach the supervisor (`run`)
through its channel and leave it with their own level."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.helpers import CREATE_T
from worker import logs
from worker.config import Settings
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.stream.multilang import MultiLangChild, StreamRecord
from worker.stream.records import ADAPTER, encode, stream_record
from worker.stream.supervisor_channel import SupervisorChannel, forward


class Collected:
    """A channel handler that keeps every document and lets a test wait for one, bounded."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def __call__(self, document: dict[str, Any]) -> None:
        with self._changed:
            self.documents.append(document)
            self._changed.notify_all()

    def wait_for(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(d.get("event") == event for d in self.documents), timeout
            )
            assert found, f"{event!r} never arrived; got {self.documents}"
            return next(d for d in self.documents if d.get("event") == event)


def child_env(ddb_settings: Settings, channel: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": ddb_settings.endpoint_url or "",
        "BUDGET_EVENTS_TABLE": ddb_settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": ddb_settings.projections_table,
        "BUDGET_LOG_LEVEL": "info",
    }
    env.pop("BUDGET_RETRY_QUEUE_URL", None)
    env.pop(logs.CHANNEL_ENV, None)
    if channel is not None:
        env[logs.CHANNEL_ENV] = channel
    return env


def drive(env: dict[str, str], stderr: Path, store: Store, budget: str) -> None:
    """One shard's life over the protocol: info lines (started, caught up) and a warning
    (lease lost)."""
    Persister(store).persist(budget, "TransactionCreated", "t1", CREATE_T)
    with stderr.open("w") as err:
        child = MultiLangChild(
            [sys.executable, "-m", "worker", "kcl-processor"], env=env, stderr=err
        )
        try:
            child.initialize("shardId-logs", "TRIM_HORIZON")
            record = StreamRecord(
                encode(stream_record(budget, "HEAD", event_name="MODIFY", sequence="301"), ADAPTER),
                budget,
                "301",
                0,
            )
            child.process_records([record], 0, lambda _seq, _sub: None)
            child.lease_lost()
        finally:
            assert child.close() == 0
    assert store.pointer(budget) == store.head(budget)


def levels(lines: list[str]) -> list[str]:
    return [json.loads(line)["level"] for line in lines if line.strip()]


def test_info_lines_go_to_the_channel_not_to_stderr(
    ddb_settings: Settings, store: Store, budget: str, tmp_path: Path
) -> None:
    collected = Collected()
    with SupervisorChannel(collected) as channel:
        drive(child_env(ddb_settings, channel.path), tmp_path / "stderr", store, budget)
        started = collected.wait_for("kcl-processor started")
        caught_up = collected.wait_for("budget caught up")
        lost = collected.wait_for("lease lost")
    assert (tmp_path / "stderr").read_text() == ""  # nothing for the daemon to call an ERROR
    assert started["level"] == caught_up["level"] == "info"
    assert caught_up["budget"] == budget
    assert lost["level"] == "warning"
    assert started["pid"] == caught_up["pid"]  # the supervisor can tell children apart


def test_without_a_channel_only_warnings_and_errors_reach_stderr(
    ddb_settings: Settings, store: Store, budget: str, tmp_path: Path
) -> None:
    drive(child_env(ddb_settings, None), tmp_path / "stderr", store, budget)
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert levels(lines) == ["warning"]  # the lease-lost warning, no info line
    assert json.loads(lines[0])["event"] == "lease lost"


def test_a_gone_supervisor_does_not_cost_a_warning(
    ddb_settings: Settings, store: Store, budget: str, tmp_path: Path
) -> None:
    """The channel's path names no listener (the supervisor died): warnings fall back to
    stderr, info lines are dropped, the shard is processed all the same."""
    env = child_env(ddb_settings, str(tmp_path / "nobody.sock"))
    drive(env, tmp_path / "stderr", store, budget)
    assert levels((tmp_path / "stderr").read_text().splitlines()) == ["warning"]


@pytest.fixture
def run_output() -> Iterator[io.StringIO]:
    """`run`'s log stream, JSON lines, as configured for the long-running commands."""
    out = io.StringIO()
    logs.configure("info", json_lines=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    yield out
    logs.configure("warning")


def test_run_logs_each_child_line_at_its_own_level(run_output: io.StringIO) -> None:
    forward({"event": "budget caught up", "level": "info", "budget": "b1", "pid": 7})
    forward({"event": "lease lost", "level": "warning", "pid": 7, "timestamp": "then"})
    forward({"event": "noise", "level": "debug", "pid": 7})  # below run's level: filtered
    lines = [json.loads(line) for line in run_output.getvalue().splitlines()]
    assert [(d["event"], d["level"]) for d in lines] == [
        ("budget caught up", "info"),
        ("lease lost", "warning"),
    ]
    assert all(d["source"] == "kcl-processor" and d["pid"] == 7 for d in lines)
    assert lines[1]["timestamp"] != "then"


def test_child_lines_come_out_of_run_with_their_level(
    ddb_settings: Settings, store: Store, budget: str, tmp_path: Path, run_output: io.StringIO
) -> None:
    """The whole path: child -> channel -> `run`'s own log output."""
    with SupervisorChannel(forward) as channel:
        drive(child_env(ddb_settings, channel.path), tmp_path / "stderr", store, budget)
    # Closing the channel handles everything that arrived before it closed.
    lines = [json.loads(line) for line in run_output.getvalue().splitlines()]
    from_child = {d["event"]: d for d in lines if d.get("source") == "kcl-processor"}
    assert from_child["budget caught up"]["level"] == "info"
    assert from_child["budget caught up"]["budget"] == budget
    assert from_child["lease lost"]["level"] == "warning"
    assert (tmp_path / "stderr").read_text() == ""


def test_a_child_traceback_survives_a_console_run() -> None:
    out = io.StringIO()
    logs.configure("info", json_lines=False)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    try:
        forward(
            {
                "event": "catch-up crashed",
                "level": "error",
                "exception": [{"exc_type": "ValueError", "exc_value": "bad", "frames": []}],
            }
        )
    finally:
        logs.configure("warning")
    assert "catch-up crashed" in out.getvalue() and "ValueError" in out.getvalue()


def test_other_documents_become_whole_lines_on_run_stdout() -> None:
    out = io.StringIO()
    forward({"_aws": {"CloudWatchMetrics": []}, "EventsApplied": 3}, output=out)
    forward({"_aws": {"CloudWatchMetrics": []}, "EventsApplied": 4}, output=out)
    assert [json.loads(line)["EventsApplied"] for line in out.getvalue().splitlines()] == [3, 4]


def test_the_channel_survives_bad_datagrams_and_keeps_big_ones_whole(tmp_path: Path) -> None:
    import socket

    collected = Collected()
    with SupervisorChannel(collected) as channel:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.sendto(b"not json", channel.path)
        sender.sendto(b"[1, 2]", channel.path)
        big = "x" * 100_000  # far beyond a pipe's atomic write size
        sender.sendto(
            json.dumps({"event": "big", "level": "info", "text": big}).encode(), channel.path
        )
        assert collected.wait_for("big")["text"] == big
        sender.close()
    assert len(collected.documents) == 1
    assert not Path(channel.path).exists()  # its private directory is gone
