"""`budget-worker dev`: the embedded default in one command.

Starts DynamoDB Local on a free loopback port, creates the tables and runs the worker with the
local stream driver (the same record processor, over the same MultiLang protocol, as in
production). `--demo` writes sample events through the persist path and shows them applied by
the stream worker, not by a direct catch-up.
"""

from __future__ import annotations

import os
import threading
import time

from rich.console import Console
from rich.table import Table

from worker import logs
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.engine.snapshots import read_snapshots
from worker.engine.status import budget_status
from worker.engine.tables import create_tables
from worker.engine.validated_read import read_transactions
from worker.errors import InfrastructureError
from worker.local import dynamodb_local
from worker.model.money import readable, readable_by_name
from worker.stream.run import run_lambda, run_local

log = logs.get(__name__)

DEMO_BUDGET = "demo-budget"
DEMO_EVENTS: list[tuple[str, str, dict[str, object]]] = [
    (
        "TransactionCreated",
        "salary-1",
        {
            "date": "2026-10-01",
            "amount": 320000,
            "account": "checking",
            "category": "salary",
            "payee": "ACME",
        },
    ),
    (
        "TransactionCreated",
        "rent-1",
        {"date": "2026-10-03", "amount": -120000, "account": "checking", "category": "rent"},
    ),
    (
        "TransactionCreated",
        "food-1",
        {"date": "2026-10-05", "amount": -5430, "account": "card", "category": "groceries"},
    ),
    ("TransactionUpdated", "food-1", {"amount": -5830, "memo": "fixed typo in amount"}),
    (
        "TransactionCreated",
        "coffee-1",
        {"date": "2026-11-02", "amount": -450, "account": "card", "category": "eating out"},
    ),
    ("TransactionDeleted", "coffee-1", {}),
    # A poison event: updating a transaction that never existed is rejected, not blocking.
    ("TransactionUpdated", "ghost-1", {"amount": 1}),
]


def run_dev(*, demo: bool, once: bool, console: Console, driver: str = "local") -> None:
    server = dynamodb_local.start()
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
    ):
        os.environ[name] = server.endpoint_url  # children (kcl-processor) inherit these
    console.print(f"DynamoDB Local at {server.endpoint_url} (pid {server.pid})")
    console.print(f"  in another shell: export AWS_ENDPOINT_URL={server.endpoint_url}")
    stop = threading.Event()
    worker: threading.Thread | None = None
    try:
        settings = Settings.from_env()
        client = aws.dynamodb(settings)
        created = create_tables(client, settings)
        console.print(f"tables created: {created.created}, existing: {created.existing}")
        store = Store.from_settings(client, settings)
        target = run_lambda if driver == "lambda" else run_local
        worker = threading.Thread(target=target, args=(settings, stop), name="worker")
        worker.start()
        if driver == "lambda":
            console.print(
                "worker running: DynamoDB Local's stream -> the Lambda handler "
                "(event source mapping semantics, in this process)"
            )
        else:
            console.print("worker running: local stream driver -> budget-worker kcl-processor")
        if demo:
            _demo(store, console)
        if not once:
            console.print("Ctrl-C stops")
            while worker.is_alive():
                worker.join(timeout=1.0)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        stop.set()
        if worker is not None:
            worker.join(timeout=60)
        server.stop()
        console.print("DynamoDB Local stopped")


def _demo(store: Store, console: Console, timeout: float = 120.0) -> None:
    persister = Persister(store)
    for event_type, tid, data in DEMO_EVENTS:
        result = persister.persist(DEMO_BUDGET, event_type, tid, data)
        console.print(f"persisted {event_type} {tid}: {result.status} {result.event_id}")
    head = store.head(DEMO_BUDGET)
    deadline = time.monotonic() + timeout
    with console.status("waiting for the stream worker to apply them"):
        while store.pointer(DEMO_BUDGET) != head:
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"the stream worker did not apply the demo events "
                    f"within {timeout:.0f}s (pointer "
                    f"{store.pointer(DEMO_BUDGET)}, head {head})"
                )
            time.sleep(0.2)
    status = budget_status(store, DEMO_BUDGET)
    console.print(
        f"applied by the stream worker: pointer = head = {head}; "
        f"rejected {status.rejected}, dirty months {', '.join(status.dirty_months)}"
    )
    view = read_transactions(store, DEMO_BUDGET, projector=None)
    table = Table(
        "date",
        "amount",
        "account",
        "category",
        "id",
        title=f"{DEMO_BUDGET} as of {view.as_of_event}",
    )
    for t in view.transactions:
        table.add_row(t.date, readable(t.amount), t.account, t.category, t.transaction_id)
    console.print(table)
    for event_id, reason in store.rejected(DEMO_BUDGET):
        console.print(f"rejected {event_id}: {reason}")
    while read_snapshots(store, DEMO_BUDGET).dirty_months and time.monotonic() < deadline:
        time.sleep(0.2)  # the worker rebuilds snapshots BUDGET_SNAPSHOT_DELAY after catching up
    snapshots = Table(
        "month",
        "income",
        "expenses",
        "net",
        "balances",
        "fresh",
        title=f"{DEMO_BUDGET}: monthly snapshots",
    )
    for entry in read_snapshots(store, DEMO_BUDGET).entries:
        s = entry.snapshot
        if s is not None:
            snapshots.add_row(
                s.month,
                readable(s.income),
                readable(s.expenses),
                readable(s.net),
                readable_by_name(s.balances),
                "yes" if entry.fresh else "no",
            )
    console.print(snapshots)
