"""Lag per budget and the budget listing (the sparse budgets index): lag in events and in
seconds, `--behind`, listing without reading an event item, and the upgrade of an events table
created before the index existed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import CREATE_T, raw_client
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.engine.status import budget_status, statuses
from worker.engine.tables import create_tables, events_table_spec
from worker.model import layout


class CallLog:
    """Every DynamoDB call a client makes, with its parameters (a botocore before-call hook)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("before-parameter-build.dynamodb", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))


@pytest.fixture
def watched(ddb_settings: Settings) -> Iterator[tuple[Store, CallLog]]:
    client = aws.dynamodb(ddb_settings)
    calls = CallLog(client)
    yield Store.from_settings(client, ddb_settings), calls


def test_lag_in_events_and_seconds(store: Store, budget: str) -> None:
    minted_at = 1_700_000_000.0
    persister = Persister(store, clock=lambda: minted_at)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    persister.persist(budget, "TransactionUpdated", "t1", {"amount": 7})
    status = budget_status(store, budget, clock=lambda: minted_at + 90.5)
    assert (status.behind, status.pointer) == (2, None)
    assert status.lag_seconds == pytest.approx(90.5, abs=0.01)
    Projector(store).catch_up(budget)
    caught = budget_status(store, budget, clock=lambda: minted_at + 500)
    assert (caught.behind, caught.lag_seconds) == (0, 0.0)


def test_behind_lists_only_lagging_budgets(store: Store) -> None:
    lagging, current = f"lag-{uuid.uuid4().hex[:8]}", f"cur-{uuid.uuid4().hex[:8]}"
    for b in (lagging, current):
        Persister(store).persist(b, "TransactionCreated", "t1", CREATE_T)
    Projector(store).catch_up(current)
    behind = {s.budget for s in statuses(store, behind_only=True)}
    assert lagging in behind and current not in behind
    everyone = {s.budget for s in statuses(store)}
    assert {lagging, current} <= everyone


def test_listing_reads_the_budgets_index_only(watched: tuple[Store, CallLog]) -> None:
    store, calls = watched
    mine = {f"list-{uuid.uuid4().hex[:8]}" for _ in range(5)}
    for b in mine:
        Persister(store).persist(b, "TransactionCreated", "t1", CREATE_T)
    calls.calls.clear()
    listed = list(store.budgets())
    assert mine <= set(listed)
    assert len(listed) == len(set(listed))  # each budget once
    operations = {name for name, _ in calls.calls}
    assert operations == {"Query"}, operations  # no Scan, no GetItem
    assert len(calls.calls) >= layout.BUCKETS  # one query (page) per bucket at least
    assert all(params.get("IndexName") == layout.BUDGETS_INDEX for _, params in calls.calls), (
        "a listing query read the table, not the index"
    )


def test_head_item_carries_its_bucket_once(store: Store, budget: str) -> None:
    for i in range(3):
        Persister(store).persist(budget, "TransactionCreated", f"t{i}", CREATE_T)
    head = store.item(store.events_table, budget, layout.HEAD_SK)
    assert head is not None and head[layout.BUCKET]["S"] == layout.bucket_of(budget)
    events = store.prefix_items(store.events_table, budget, layout.EVENT_PREFIX)
    assert all(layout.BUCKET not in e for e in events)  # the index stays sparse


def test_tables_create_upgrades_an_events_table_without_the_index(ddb_endpoint: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        events_table=f"old-events-{suffix}",
        projections_table=f"old-projections-{suffix}",
        endpoint_url=ddb_endpoint,
    )
    client = aws.dynamodb(settings)
    old_spec = events_table_spec(settings.events_table)
    old_spec.pop("GlobalSecondaryIndexes")
    old_spec["AttributeDefinitions"] = old_spec["AttributeDefinitions"][:2]
    client.create_table(**old_spec)
    client.get_waiter("table_exists").wait(TableName=settings.events_table)
    old_budgets = {f"old-{i}" for i in range(3)}
    for b in old_budgets:  # head items as the code before the index wrote them
        client.put_item(
            TableName=settings.events_table,
            Item={**layout.key(b, layout.HEAD_SK), "last_event_id": layout.s("01J" + "0" * 23)},
        )
    result = create_tables(client, settings)
    assert settings.projections_table in result.created
    assert any("index" in u for u in result.upgraded)
    assert any("3 budgets" in u for u in result.upgraded)
    upgraded = Store.from_settings(client, settings)
    assert set(upgraded.budgets()) == old_budgets
    again = create_tables(client, settings)
    assert again.upgraded == []  # idempotent


def test_a_new_events_table_has_the_budgets_index(ddb_settings: Settings) -> None:
    described = raw_client(ddb_settings).describe_table(TableName=ddb_settings.events_table)[
        "Table"
    ]
    (index,) = described["GlobalSecondaryIndexes"]
    assert index["IndexName"] == layout.BUDGETS_INDEX
    assert index["Projection"]["ProjectionType"] == "KEYS_ONLY"
