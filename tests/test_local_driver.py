"""End to end: DynamoDB Local's stream, the local driver, the kcl-processor children.

Kill the worker mid-batch and restart it: nothing lost, nothing applied twice. Replay from the
trim horizon: the same final state. Replay refuses while the worker holds leases. With
BUDGET_METRICS=emf, the EMF counts the worker prints equal what the fold says happened."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import CREATE_T, assert_matches_fold, fresh_tables
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.engine.snapshots import read_snapshots
from worker.model.fold import fold
from worker.model.snapshot_math import all_snapshots
from worker.stream.leases import LeaseTable


@pytest.fixture
def stream_settings(ddb_endpoint: str) -> Settings:
    """Tables of their own: this test's stream carries only this test's events."""
    return fresh_tables(ddb_endpoint, "e2e")


@pytest.fixture
def env(stream_settings: Settings) -> dict[str, str]:
    values = {
        **os.environ,
        "AWS_ENDPOINT_URL": stream_settings.endpoint_url or "",
        "BUDGET_EVENTS_TABLE": stream_settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": stream_settings.projections_table,
        "BUDGET_LEASE_TABLE": stream_settings.lease_table,
        "BUDGET_POLL_SECONDS": "0.1",
        "BUDGET_LEASE_FAILOVER_SECONDS": "2",
        "BUDGET_LOG_FORMAT": "json",
    }
    values.pop("BUDGET_RETRY_QUEUE_URL", None)
    return values


@pytest.fixture
def worker(env: dict[str, str], tmp_path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run", "--driver", "local"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Bounded wait for a state (not a timing assertion): fail with `what` if never reached."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def crash(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the driver and its kcl-processor children at once, like a dying container.
    (The children run in their own session, so a group kill would miss them.)"""
    children = []
    for task in os.listdir(f"/proc/{process.pid}/task"):
        with open(f"/proc/{process.pid}/task/{task}/children") as f:
            children += [int(pid) for pid in f.read().split()]
    for pid in [process.pid, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    for pid in children:  # they are not ours to reap: wait until gone or a zombie
        wait_until(lambda pid=pid: _dead(pid), f"child {pid} died")


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def caught_up(store: Store, budgets: list[str]) -> bool:
    return all(store.pointer(b) == store.head(b) for b in budgets)


def snapshot(store: Store, budgets: list[str]) -> dict[str, object]:
    return {b: (store.pointer(b), store.transactions(b), store.rejected(b)) for b in budgets}


def persist_history(store: Store, budgets: list[str], per_budget: int) -> None:
    persister = Persister(store)
    for n in range(per_budget):
        for b in budgets:
            if n % 5 == 4:
                persister.persist(b, "TransactionUpdated", f"t{n - 1}", {"amount": n})
            elif n % 7 == 6:
                persister.persist(b, "TransactionDeleted", f"missing-{n}", {})  # rejected
            else:
                persister.persist(
                    b, "TransactionCreated", f"t{n}", {**CREATE_T, "date": f"2026-0{1 + n % 9}-11"}
                )


def test_kill_mid_batch_restart_and_replay(stream_settings: Settings, worker, env) -> None:
    store = Store.from_settings(aws.dynamodb(stream_settings), stream_settings)
    budgets = [f"e2e-{i}-{uuid.uuid4().hex[:6]}" for i in range(12)]
    persist_history(store, budgets, 40)
    # One budget at a time, so a batch takes long enough (each budget a batched step and a
    # snapshot rebuild) for the kill below to land between its budgets.
    env["BUDGET_CONCURRENCY"] = "1"

    first = worker()
    wait_until(lambda: store.pointer(budgets[0]) is not None, "the first budget is projected")
    crash(first)  # mid-batch: later budgets of the batch are not done
    assert not caught_up(store, budgets), "the kill came too late to be mid-batch"
    for b in budgets:
        assert_matches_fold(store, b)  # whatever committed is whole

    second = worker()  # takes over the dead worker's lease after the failover time
    wait_until(lambda: caught_up(store, budgets), "every budget is caught up after restart")
    persist_history(store, budgets[:2], 10)  # the live stream keeps flowing
    wait_until(lambda: caught_up(store, budgets), "new events are projected")
    wait_until(
        lambda: not any(read_snapshots(store, b).dirty_months for b in budgets),
        "the worker rebuilt every dirty snapshot after catching up",
    )
    for b in budgets:
        assert_matches_fold(store, b)
        view = read_snapshots(store, b)
        assert all(e.fresh for e in view.entries)
        expected = all_snapshots(fold(store.events(b)).transactions.values())
        assert [e.snapshot.figures() for e in view.entries if e.snapshot] == [
            s.figures() for s in expected
        ]
    before = snapshot(store, budgets)

    second.send_signal(signal.SIGTERM)  # graceful: shutdownRequested, last checkpoint
    assert second.wait(timeout=60) == 0
    leases = LeaseTable(store.client, stream_settings.lease_table).all()
    assert leases and all(lease.owner is None for lease in leases)  # released on shutdown
    done = subprocess.run(
        [sys.executable, "-m", "worker", "replay", "--trim-horizon", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    shards = json.loads(done.stdout)["shards"]
    assert shards and all(s["new"] == "TRIM_HORIZON" for s in shards)
    assert any(s["old"] not in (None, "TRIM_HORIZON") for s in shards)

    worker()
    wait_until(
        lambda: all(
            lease.checkpoint not in ("TRIM_HORIZON",)
            and lease.checkpoint >= max(s["old"] for s in shards if s["old"])
            for lease in LeaseTable(store.client, stream_settings.lease_table).all()
        ),
        "the replayed stream is read back to where it was",
    )
    assert snapshot(store, budgets) == before  # re-reading changed nothing


def test_replay_refuses_while_a_worker_holds_leases(stream_settings: Settings, worker, env) -> None:
    store = Store.from_settings(aws.dynamodb(stream_settings), stream_settings)
    budget = f"live-{uuid.uuid4().hex[:6]}"
    persist_history(store, [budget], 3)
    worker()
    wait_until(lambda: caught_up(store, [budget]), "the budget is caught up")
    command = [sys.executable, "-m", "worker", "replay", "--trim-horizon", "--json"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "refusing to replay" in refused.stderr
    assert refused.stdout == ""
    before = LeaseTable(store.client, stream_settings.lease_table).all()
    forced = subprocess.run(
        [*command, "--force"], env=env, capture_output=True, text=True, timeout=60
    )
    assert forced.returncode == 0, forced.stderr
    # The running worker loses the lease (replay took it away) and re-reads from the trim
    # horizon instead of checkpointing over the replayed position.
    persist_history(store, [budget], 2)
    wait_until(
        lambda: all(
            lease.owner is not None and lease.counter > old.counter + 1
            for lease, old in zip(
                LeaseTable(store.client, stream_settings.lease_table).all(), before, strict=True
            )
        ),
        "the worker takes the lease back after the forced replay",
    )
    wait_until(lambda: caught_up(store, [budget]), "the budget is caught up again")
    assert_matches_fold(store, budget)


def test_emf_counts_match_the_fold(stream_settings: Settings, worker, env, tmp_path) -> None:
    env.update({"BUDGET_METRICS": "emf", "BUDGET_METRICS_NAMESPACE": "BudgetWorkerTest"})
    store = Store.from_settings(aws.dynamodb(stream_settings), stream_settings)
    budgets = [f"emf-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    persist_history(store, budgets, 20)

    process = worker()
    wait_until(lambda: caught_up(store, budgets), "every budget is caught up")
    process.send_signal(signal.SIGTERM)  # graceful: children flush, run drains the channel
    assert process.wait(timeout=60) == 0

    documents = []
    for line in (tmp_path / "worker-0.log").read_text().splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    assert documents, "no EMF document on the worker's output"
    totals: dict[str, float] = {}
    for document in documents:
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "BudgetWorkerTest"
        assert directive["Dimensions"] == [["service"]]
        for metric in directive["Metrics"]:
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(document[metric["Name"]])

    rejected = events = 0
    for b in budgets:
        assert_matches_fold(store, b)
        rejected += len(store.rejected(b))
        events += len(store.events(b))
    assert totals.get("EventsRejected", 0) == rejected > 0
    assert totals.get("EventsApplied", 0) == events - rejected
    assert totals.get("CatchUpFailures", 0) == 0
    assert "ProjectionLagSeconds" in totals
