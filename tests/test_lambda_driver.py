"""The Lambda path on one machine: the event source mapping's semantics (unit tests of
`deliver` with a fake function), `run --driver lambda`'s driver draining a backlog on DynamoDB
Local with injected failures (partial batch responses, a raised error bisected, a budget that
fails until its batch is discarded), and `redrive` of the discarded batch's destination message
converging everything to the fold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CREATE_T, assert_matches_fold, fresh_tables, new_budget
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder
from worker.stream import destination, settle
from worker.stream.lambda_driver import EsmConfig, LambdaDriver, deliver
from worker.stream.lambda_handler import StreamHandler
from worker.stream.local_driver import DriverConfig

# -- the ESM's semantics, with a fake function ----------------------------------------------


def rec(seq: int, created: float = 1e12) -> dict[str, Any]:
    return {"dynamodb": {"SequenceNumber": str(seq), "ApproximateCreationDateTime": created}}


class Esm:
    """Runs `deliver` over a batch and records commits, discards and invocations."""

    def __init__(self, **config: Any) -> None:
        self.config = EsmConfig(retry_delay=0, **config)
        self.commits: list[str] = []
        self.discarded: list[tuple[list[str], str, int]] = []
        self.invoked: list[list[str]] = []

    def run(self, batch: list[dict[str, Any]], function: Any, stop_after: int = 10**6) -> Any:
        waits = iter(range(stop_after))

        def invoke(records: list[dict[str, Any]]) -> Any:
            self.invoked.append([r["dynamodb"]["SequenceNumber"] for r in records])
            return function(records)

        def discard(records: list[dict[str, Any]], condition: str, count: int, _: Any) -> None:
            self.discarded.append(
                ([r["dynamodb"]["SequenceNumber"] for r in records], condition, count)
            )

        return deliver(
            batch,
            invoke,
            self.config,
            commit=self.commits.append,
            discard=discard,
            wait=lambda _: next(waits, None) is None,
        )


def test_partial_response_moves_the_checkpoint_and_retries_from_the_reported_record() -> None:
    answers = iter([{"batchItemFailures": [{"itemIdentifier": "3"}]}, {"batchItemFailures": []}])
    esm = Esm()
    esm.run([rec(n) for n in range(1, 6)], lambda _: next(answers))
    assert esm.invoked == [["1", "2", "3", "4", "5"], ["3", "4", "5"]]
    assert esm.commits == ["2", "5"]


def test_a_raised_error_is_bisected_until_the_bad_record_is_alone_then_discarded() -> None:
    def function(records: list[dict[str, Any]]) -> Any:
        if any(r["dynamodb"]["SequenceNumber"] == "6" for r in records):
            raise RuntimeError("boom")
        return None

    esm = Esm(max_retry_attempts=2)
    done = esm.run([rec(n) for n in range(1, 9)], function)
    assert esm.discarded == [(["6"], destination.RETRIES_EXHAUSTED, 3)]
    assert esm.commits == ["4", "5", "6", "8"]  # never past 6 before 6 is settled
    assert done.bisections == 3 and done.retries == 2


def test_without_bisect_the_whole_batch_is_retried_then_discarded() -> None:
    esm = Esm(max_retry_attempts=1, bisect=False)
    esm.run([rec(1), rec(2)], lambda _: (_ for _ in ()).throw(RuntimeError("boom")))
    assert esm.invoked == [["1", "2"], ["1", "2"]]
    assert esm.discarded == [(["1", "2"], destination.RETRIES_EXHAUSTED, 2)]
    assert esm.commits == ["2"]


def test_an_identifier_not_in_the_batch_fails_the_whole_batch() -> None:
    answers = iter([{"batchItemFailures": [{"itemIdentifier": "nope"}]}, {}])
    esm = Esm()
    esm.run([rec(1), rec(2)], lambda _: next(answers))
    assert esm.invoked == [["1", "2"], ["1", "2"]] and esm.commits == ["2"]


def test_records_older_than_the_maximum_age_are_discarded() -> None:
    esm = Esm(max_record_age=60, max_retry_attempts=-1)
    esm.run(
        [rec(1, created=time.time() - 3600)],
        lambda _: {"batchItemFailures": [{"itemIdentifier": "1"}]},
    )
    assert esm.discarded == [(["1"], destination.RECORD_TOO_OLD, 1)]


def test_stopping_during_a_retry_commits_nothing_more() -> None:
    esm = Esm()
    done = esm.run(
        [rec(1), rec(2)],
        lambda _: {"batchItemFailures": [{"itemIdentifier": "2"}]},
        stop_after=0,
    )
    assert done.stopped and esm.commits == ["1"]


# -- end to end on DynamoDB Local ------------------------------------------------------------


class Faults:
    """Budgets that fail their first catch-ups, one that makes the whole invocation raise once,
    and one that fails until `fixed` is set."""

    def __init__(self, flaky: set[str], crashing: str, doomed: str) -> None:
        self.flaky = {b: 2 for b in flaky}
        self.crashing = crashing
        self.crashed = False
        self.doomed = doomed
        self.fixed = threading.Event()
        self.lock = threading.Lock()

    def catch_up(self, projector: Projector) -> Any:
        def run(budget: str) -> Any:
            with self.lock:
                if self.flaky.get(budget, 0) > 0:
                    self.flaky[budget] -= 1
                    raise RuntimeError(f"{budget}: throttled")
            if budget == self.doomed and not self.fixed.is_set():
                raise RuntimeError(f"{budget}: table missing")
            return projector.catch_up(budget)

        return run

    def catch_up_many(self, inner: settle.CatchUpMany) -> settle.CatchUpMany:
        def run(budgets: list[str]) -> Any:
            with self.lock:
                if self.crashing in budgets and not self.crashed:
                    self.crashed = True
                    raise RuntimeError("out of memory")  # the invocation itself fails
            return inner(budgets)

        return run


@pytest.mark.ddb_local
def test_the_lambda_driver_drains_a_backlog_with_failures_then_redrive_converges(
    ddb_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fresh_tables(ddb_endpoint, "esm")
    store = Store.from_settings(aws.dynamodb(settings), settings)
    budgets = [new_budget() for _ in range(12)]
    persister = Persister(store)
    for n in range(4):
        for budget in budgets:
            persister.persist(budget, "TransactionCreated", f"t{n}", {**CREATE_T, "amount": n})
    faults = Faults(set(budgets[2:5]), crashing=budgets[6], doomed=budgets[9])
    projector = Projector(store)
    handler = StreamHandler(
        faults.catch_up_many(settle.per_budget(faults.catch_up(projector), 4)),
        None,
        Rebuilder(store).rebuild,
    )
    esm = EsmConfig(
        batch_size=10, max_retry_attempts=3, retry_delay=0.01, on_failure_dir=tmp_path / "dlq"
    )
    driver = LambdaDriver(
        aws.dynamodb(settings),
        aws.dynamodb_streams(settings),
        settings.events_table,
        settings.lease_table,
        handler,
        esm,
        DriverConfig(poll_seconds=0.05, failover_seconds=2),
    )
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop,))
    thread.start()
    try:
        others = [b for b in budgets if b != faults.doomed]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            behind = [b for b in others if store.pointer(b) != store.head(b)]
            if not behind and list((tmp_path / "dlq").glob("*.json")):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"not drained: {behind}")
    finally:
        stop.set()
        thread.join(timeout=60)
    for budget in others:
        assert store.pointer(budget) == store.head(budget)
        assert_matches_fold(store, budget)
    assert faults.crashed
    assert store.pointer(faults.doomed) != store.head(faults.doomed)
    messages = sorted((tmp_path / "dlq").glob("*.json"))
    assert messages
    info = json.loads(messages[0].read_text())["DDBStreamBatchInfo"]
    assert info["shardId"] and int(info["startSequenceNumber"]) <= int(info["endSequenceNumber"])

    # The cause is fixed; the operator redrives the destination's messages.
    monkeypatch.setenv("AWS_ENDPOINT_URL", ddb_endpoint)
    monkeypatch.setenv("BUDGET_EVENTS_TABLE", settings.events_table)
    monkeypatch.setenv("BUDGET_PROJECTIONS_TABLE", settings.projections_table)
    document = redrive_json(messages[0], monkeypatch)
    assert document["shard_id"] == info["shardId"]
    assert faults.doomed in document["budgets"] and faults.doomed in document["caught_up"]
    assert document["failed"] == [] and document["records"] >= 1
    assert store.pointer(faults.doomed) == store.head(faults.doomed)
    assert_matches_fold(store, faults.doomed)


def redrive_json(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from worker import cli

    out: list[str] = []
    monkeypatch.setattr(sys.stdout, "write", out.append)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["redrive", str(path), "--json"])
    monkeypatch.undo()
    assert exit_info.value.code == 0
    return json.loads("".join(out))


@pytest.mark.ddb_local
def test_redrive_of_a_range_the_stream_no_longer_holds_says_to_run_the_sweep(
    ddb_endpoint: str, tmp_path: Path
) -> None:
    settings = fresh_tables(ddb_endpoint, "gone")
    message = destination.failure_message(
        shard_id="shardId-00000000000000000000-deadbeef",
        stream_arn="",
        records=[rec(10**20 + 100, created=1.0)],
        condition=destination.RETRIES_EXHAUSTED,
        invoke_count=4,
        function_error=None,
    )
    path = tmp_path / "message.json"
    path.write_text(json.dumps({"Messages": [{"Body": json.dumps(message)}]}))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": ddb_endpoint,
        "BUDGET_EVENTS_TABLE": settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": settings.projections_table,
    }
    done = subprocess.run(
        [sys.executable, "-m", "worker", "redrive", str(path), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "catch-up --all" in done.stderr and done.stdout == ""


def test_redrive_refuses_what_is_not_a_destination_message(tmp_path: Path) -> None:
    path = tmp_path / "message.json"
    path.write_text('{"Records": []}')
    done = subprocess.run(
        [sys.executable, "-m", "worker", "redrive", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "DDBStreamBatchInfo" in done.stderr


@pytest.mark.ddb_local
def test_run_driver_lambda_applies_events_and_prints_emf(ddb_endpoint: str, tmp_path: Path) -> None:
    settings: Settings = fresh_tables(ddb_endpoint, "runlam")
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": ddb_endpoint,
        "BUDGET_EVENTS_TABLE": settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": settings.projections_table,
        "BUDGET_LEASE_TABLE": settings.lease_table,
        "BUDGET_POLL_SECONDS": "0.1",
        "BUDGET_METRICS": "emf",
        "BUDGET_LAMBDA_BATCH_SIZE": "5",
    }
    env.pop("BUDGET_RETRY_QUEUE_URL", None)
    store = Store.from_settings(aws.dynamodb(settings), settings)
    budget = new_budget()
    persister = Persister(store)
    for n in range(7):
        persister.persist(budget, "TransactionCreated", f"t{n}", {**CREATE_T, "amount": n})
    stdout = tmp_path / "stdout"
    with open(stdout, "wb") as out, open(tmp_path / "stderr", "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run", "--driver", "lambda"],
            env=env,
            stdout=out,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 60
            while store.pointer(budget) != store.head(budget) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    assert store.pointer(budget) == store.head(budget)
    assert_matches_fold(store, budget)
    documents = [json.loads(line) for line in stdout.read_text().splitlines() if '"_aws"' in line]
    assert sum(sum(d.get("EventsApplied", [])) for d in documents) == 7
