"""What every benchmark stands on: a DynamoDB Local of its own, tables on it, the raw loop the
figures are divided by, the synthetic backlogs, and the results file.

Why one module: each figure is reported as a ratio to the raw loop measured in the same run on
the same server (this machine is shared, absolute figures are noisy), so the loop, the server
and the workload must be the same code in every benchmark, or the ratios stop being comparable.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ulid import ULID

from worker import logs
from worker.config import Settings
from worker.engine import aws
from worker.engine.reads import Store
from worker.engine.tables import create_tables
from worker.local import dynamodb_local
from worker.local.scratch import scratch_tables
from worker.model import layout
from worker.model.events import Event, EventType

RESULTS = Path(__file__).parent / "results"


def quiet() -> None:
    """Benchmarks provoke no failures worth logging; keep stderr for their own progress."""
    logs.configure("error")


@contextmanager
def local_server() -> Iterator[str]:
    """A fresh DynamoDB Local (in memory, loopback) for the block; yields its endpoint."""
    server = dynamodb_local.start()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


@contextmanager
def default_tables() -> Iterator[Store]:
    """A fresh DynamoDB Local holding the default tables, and a store on them."""
    with local_server() as endpoint:
        settings = Settings(endpoint_url=endpoint)
        client = aws.dynamodb(settings)
        create_tables(client, settings)
        yield Store.from_settings(client, settings)


def fresh(endpoint: str, tag: str) -> tuple[Settings, Store]:
    """New, uniquely named tables on `endpoint` (their stream carries only this phase)."""
    settings = scratch_tables(endpoint, tag)
    return settings, Store.from_settings(aws.dynamodb(settings), settings)


def raw_loop(store: Store, seconds: float, limit: int) -> float:
    """Calls/s of a bare loop of 2-item conditional TransactWriteItems, one thread: the most a
    one-step-at-a-time writer could do on this server right now."""
    table = store.projections_table
    key = f"raw-{uuid.uuid4().hex[:8]}"
    done, started = 0, time.perf_counter()
    while done < limit and time.perf_counter() - started < seconds:
        store.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": {**layout.key(key, f"ITEM#{done:08d}"), "n": layout.n(done)},
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                },
                {
                    "Update": {
                        "TableName": table,
                        "Key": layout.key(key, "COUNTER"),
                        "UpdateExpression": "SET n = :n",
                        "ConditionExpression": "attribute_not_exists(n) OR n < :n",
                        "ExpressionAttributeValues": {":n": layout.n(done)},
                    }
                },
            ]
        )
        done += 1
    return done / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def base_id() -> int:
    """A ULID (as an integer) with room below it for a million-odd ids of one run."""
    return int(ULID()) & ~((1 << 40) - 1)


def history(budget: str, count: int, base: int) -> list[Event]:
    """A budget's events: each transaction created, then updated three times (some updates
    move it to another month), ids strictly increasing."""
    events = []
    for n in range(count):
        tid = f"t{n - n % 4}"
        if n % 4 == 0:
            kind = EventType.CREATED
            data: dict[str, Any] = {
                "date": f"2026-{1 + n % 12:02d}-15",
                "amount": -n,
                "account": "a",
                "category": "c",
            }
        else:
            kind = EventType.UPDATED
            data = {"amount": n} if n % 4 != 2 else {"date": f"2026-{1 + (n + 1) % 12:02d}-10"}
        events.append(Event(budget, str(ULID.from_int(base + n)), kind, tid, data))
    return events


def seed(store: Store, events: list[Event]) -> None:
    """Store events and their budget's head directly (the persist path is measured apart):
    the projector reads exactly what persist would have left."""
    for start in range(0, len(events), 25):
        chunk = events[start : start + 25]
        requests: list[Any] = [{"PutRequest": {"Item": layout.event_item(e)}} for e in chunk]
        pending: Any = {store.events_table: requests}
        while pending:
            pending = store.client.batch_write_item(RequestItems=pending).get("UnprocessedItems")
    last = events[-1]
    store.client.put_item(
        TableName=store.events_table,
        Item={
            **layout.key(last.budget, layout.HEAD_SK),
            layout.LAST_EVENT_ID: layout.s(last.event_id),
            layout.BUCKET: layout.s(layout.bucket_of(last.budget)),
        },
    )


def write_results(path: Path, figures: dict[str, Any]) -> None:
    """The results file: the figures as indented JSON, as every benchmark has written them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
