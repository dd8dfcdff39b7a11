"""A corpus of bad inputs, run through every entry point: CLI arguments, event payloads, stream
records, MultiLang messages and retry-queue messages. Each must get a clear error (or be
skipped with a log line) and nothing may be written or lost. Runs in-process on moto, so it is
fast enough for every CI run; `budget-worker simulate --report` includes its results.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from typing import Any

from worker.config import Settings, temporary_env
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.errors import InvalidInput
from worker.proof.kcl_inputs import Batch, Record, RecordingCheckpointer
from worker.stream.records import ADAPTER, encode, kcl_data, stream_record
from worker.stream.retry_queue import decode

GOOD = {"date": "2026-01-15", "amount": -100, "account": "chk", "category": "food"}


BAD_PAYLOADS: list[tuple[str, str, Any, str | None]] = [
    ("TransactionCreated", "t1", {**GOOD, "amount": 1.5}, None),
    ("TransactionCreated", "t1", {**GOOD, "amount": "100"}, None),
    ("TransactionCreated", "t1", {**GOOD, "amount": None}, None),
    ("TransactionCreated", "t1", {**GOOD, "amount": 10**40}, None),
    ("TransactionCreated", "t1", {**GOOD, "date": "2026-02-30"}, None),
    ("TransactionCreated", "t1", {**GOOD, "date": "2026-W03-4"}, None),
    ("TransactionCreated", "t1", {**GOOD, "date": "26-01-15"}, None),
    ("TransactionCreated", "t1", {**GOOD, "date": ""}, None),
    ("TransactionCreated", "t1", {"amount": 1}, None),
    ("TransactionCreated", "t1", {**GOOD, "extra": 1}, None),
    ("TransactionCreated", "t1", {**GOOD, "memo": "\ud800"}, None),
    ("TransactionCreated", "t1", {**GOOD, "memo": "x" * 17_000}, None),
    ("TransactionCreated", "t1", [1, 2], None),
    ("TransactionCreated", "t1", "text", None),
    ("TransactionCreated", "", GOOD, None),
    ("TransactionCreated", "x" * 129, GOOD, None),
    ("TransactionCreated", "tab\tid", GOOD, None),
    ("TransactionUpdated", "t1", {}, None),
    ("TransactionUpdated", "t1", {"category": None}, None),
    ("TransactionDeleted", "t1", {"amount": 1}, None),
    ("TransactionExploded", "t1", GOOD, None),
    ("transactioncreated", "t1", GOOD, None),
    ("TransactionCreated", "t1", GOOD, "not-a-ulid"),
    ("TransactionCreated", "t1", GOOD, "01J"),
    ("TransactionCreated", "t1", GOOD, "U1JD0000000000000000000000"),
    ("TransactionCreated", "t1", GOOD, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"),
]

BAD_CLI: list[list[str]] = [
    [],
    ["frobnicate"],
    ["events", "put", "b", "--type", "TransactionCreated", "--transaction", "t1"],
    [
        "events",
        "put",
        "b",
        "--type",
        "TransactionCreated",
        "--transaction",
        "t1",
        "--data",
        "{not json",
    ],
    [
        "events",
        "put",
        "b",
        "--type",
        "TransactionCreated",
        "--transaction",
        "t1",
        "--data",
        '{"amount": ' + "9" * 5000 + "}",
    ],
    [
        "events",
        "put",
        "b",
        "--type",
        "TransactionCreated",
        "--transaction",
        "t1",
        "--data",
        json.dumps({**GOOD, "amount": 0.5}),
    ],
    [
        "events",
        "put",
        "b",
        "--type",
        "TransactionCreated",
        "--transaction",
        "t1",
        "--data",
        json.dumps(GOOD),
        "--event-id",
        "nope",
    ],
    [
        "events",
        "put",
        "",
        "--type",
        "TransactionCreated",
        "--transaction",
        "t1",
        "--data",
        json.dumps(GOOD),
    ],
    ["events", "put", "b"],
    ["events", "import", "/nonexistent/file.jsonl"],
    ["transactions", ""],
    ["catch-up", "x" * 300],
    ["status", "\x01"],
    ["replay"],
    ["replay", "--trim-horizon", "--at-timestamp", "2026-01-01T00:00:00Z"],
    ["replay", "--at-timestamp", "yesterday"],
    ["replay", "--after-sequence", "12ab"],
    ["local", "start", "--port", "notaport"],
    ["snapshots"],
]

BAD_RECORDS: list[str] = [
    "%%%",
    kcl_data(b"\xff\xfe\x00"),
    kcl_data([]),
    kcl_data({}),
    kcl_data({"dynamodb": {}}),
    kcl_data({"dynamodb": {"Keys": {"id": {"S": "x"}}}}),
    kcl_data({"dynamodb": {"Keys": {"pk": {"N": "1"}, "sk": {"S": "HEAD"}}}}),
    encode(stream_record("b", "POINTER"), ADAPTER),
    encode(stream_record("", "HEAD"), ADAPTER),
    encode(stream_record("b" * 500, "HEAD"), ADAPTER),
]

BAD_PROTOCOL: list[str] = [
    "not json",
    '{"no_action": true}',
    '{"action": "explode"}',
    '{"action": "processRecords"}',
    '{"action": "processRecords", "millisBehindLatest": 0, "records": [{"action": "record"}]}',
    '{"action": "initialize"}',
]

BAD_QUEUE: list[str] = [
    "",
    "null",
    "[]",
    "not json",
    '{"budgets": "b"}',
    '{"budget": ""}',
    '{"budget": 7}',
    '{"budget": "tab\\tbudget"}',
]


@dataclass(slots=True)
class Outcome:
    tried: int = 0
    ok: int = 0
    problems: list[str] = field(default_factory=list)

    def record(self, passed: bool, what: str) -> None:
        self.tried += 1
        if passed:
            self.ok += 1
        else:
            self.problems.append(what)

    def as_json(self) -> dict[str, Any]:
        return {"tried": self.tried, "ok": self.ok, "problems": self.problems}


def _events_written(store: Store) -> int:
    return int(store.client.scan(TableName=store.events_table, Select="COUNT")["Count"])


def run_corpus(
    settings: Settings, cli_main: Callable[[list[str]], None]
) -> dict[str, dict[str, Any]]:
    """Run every bad input against tables described by `settings` (already created)."""
    store = Store.from_settings(aws.dynamodb(settings), settings)
    results = {
        "event payloads (persist)": _payloads(store),
        "CLI arguments": _cli(store, settings, cli_main),
        "stream records (record processor)": _records(),
        "MultiLang messages (kcl-processor)": _protocol(),
        "retry-queue messages": _queue(),
    }
    return {k: v.as_json() for k, v in results.items()}


def _payloads(store: Store) -> Outcome:
    outcome = Outcome()
    persister = Persister(store)
    for kind, tid, data, event_id in BAD_PAYLOADS:
        before = _events_written(store)
        try:
            persister.persist("corpus-budget", kind, tid, data, event_id)
            passed = False
        except InvalidInput:
            passed = _events_written(store) == before
        outcome.record(passed, f"payload {kind} {tid[:20]!r} {str(data)[:40]}")
    return outcome


def _cli(store: Store, settings: Settings, main: Callable[[list[str]], None]) -> Outcome:
    outcome = Outcome()
    env = {
        "BUDGET_EVENTS_TABLE": settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": settings.projections_table,
    }
    with temporary_env(env):
        for argv in BAD_CLI:
            before = _events_written(store)
            err = io.StringIO()
            try:
                with redirect_stdout(io.StringIO()), redirect_stderr(err):
                    main(argv)
                code = 0
            except SystemExit as exit_:
                code = int(exit_.code or 0)
            lines = [line for line in err.getvalue().splitlines() if line.strip()]
            passed = (
                code == 2
                and _events_written(store) == before
                and any(line.startswith(("budget-worker", "usage")) for line in lines)
            )
            outcome.record(passed, f"cli {argv!r} -> exit {code}")
    return outcome


def _records() -> Outcome:
    from worker.stream.record_processor import BudgetRecordProcessor

    outcome = Outcome()
    good = encode(stream_record("good", "HEAD"), ADAPTER)
    for n, data in enumerate(BAD_RECORDS):
        handled: list[str] = []
        processor = BudgetRecordProcessor(handled.append)
        checkpointer = RecordingCheckpointer()
        processor.process_records(
            Batch([Record(data, str(2 * n)), Record(good, str(2 * n + 1))], checkpointer)
        )
        # skipped with a log line; the good record behind it was handled and checkpointed
        outcome.record(
            handled == ["good"] and checkpointer.taken == [str(2 * n + 1)], f"record {data[:30]!r}"
        )
    return outcome


def _protocol() -> Outcome:
    from amazon_kclpy.kcl import KCLProcess

    from worker.stream.record_processor import BudgetRecordProcessor

    outcome = Outcome()
    for line in BAD_PROTOCOL:
        handled: list[str] = []
        out = io.StringIO()
        process = KCLProcess(
            BudgetRecordProcessor(handled.append),
            input_file=io.StringIO(line + "\n"),
            output_file=out,
            error_file=io.StringIO(),
        )
        try:
            process.run()
            ended = False
        except (Exception, SystemExit):
            ended = True  # the child stops; the daemon restarts it from the last checkpoint
        acknowledged = '"status"' in out.getvalue()
        outcome.record(ended and not acknowledged and not handled, f"protocol {line[:40]!r}")
    return outcome


def _queue() -> Outcome:
    outcome = Outcome()
    for body in BAD_QUEUE:
        try:
            decode(body)
            passed = False
        except InvalidInput:
            passed = True
        outcome.record(passed, f"queue message {body[:30]!r}")
    return outcome
