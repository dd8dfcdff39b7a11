"""`budget-worker dev`: the embedded default in one command.

Starts DynamoDB Local on a free loopback port, creates the tables, optionally runs a demo, then
keeps projecting every budget that is behind until interrupted. (This polling loop stands in
for the stream worker until `run --driver local` exists.)
"""

from __future__ import annotations

import os
import time

from rich.console import Console
from rich.table import Table

from worker import aws, local_ddb, logs
from worker.config import Settings
from worker.persist import Persister
from worker.projector import Projector
from worker.reads import Store
from worker.status import statuses
from worker.tables import create_tables
from worker.validated_read import read_transactions

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


def run_dev(*, demo: bool, once: bool, console: Console) -> None:
    server = local_ddb.start()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
    console.print(f"DynamoDB Local at {server.endpoint_url} (pid {server.pid})")
    console.print(f"  in another shell: export AWS_ENDPOINT_URL={server.endpoint_url}")
    try:
        settings = Settings.from_env()
        client = aws.dynamodb(settings)
        created = create_tables(client, settings)
        console.print(f"tables created: {created.created}, existing: {created.existing}")
        store = Store.from_settings(client, settings)
        if demo:
            _demo(store, console)
        if not once:
            _poll(store, console)
    finally:
        server.stop()
        console.print("DynamoDB Local stopped")


def _demo(store: Store, console: Console) -> None:
    persister = Persister(store)
    for event_type, tid, data in DEMO_EVENTS:
        result = persister.persist(DEMO_BUDGET, event_type, tid, data)
        console.print(f"persisted {event_type} {tid}: {result.status} {result.event_id}")
    caught = Projector(store).catch_up(DEMO_BUDGET)
    console.print(f"catch-up: applied {caught.applied}, rejected {caught.rejected}")
    view = read_transactions(store, DEMO_BUDGET)
    table = Table(
        "date",
        "amount",
        "account",
        "category",
        "id",
        title=f"{DEMO_BUDGET} as of {view.as_of_event}",
    )
    for t in view.transactions:
        table.add_row(t.date, str(t.amount), t.account, t.category, t.transaction_id)
    console.print(table)
    for event_id, reason in store.rejected(DEMO_BUDGET):
        console.print(f"rejected {event_id}: {reason}")


def _poll(store: Store, console: Console, interval: float = 1.0) -> None:
    console.print("projecting budgets that fall behind; Ctrl-C to stop")
    projector = Projector(store)
    while True:
        for status in statuses(store):
            if status.behind:
                result = projector.catch_up(status.budget)
                log.info("caught up", **result.as_json())
        time.sleep(interval)
