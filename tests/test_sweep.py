"""The sweep (`catch-up --all`) and the projection rebuild it makes possible, on DynamoDB Local.

Budgets made to lag with no worker running (as after an outage longer than the stream's
retention: no record will ever name them again) are all caught up and equal the fold; budgets
whose DynamoDB calls fail are reported while the rest are caught up; a projection rebuilt into
a fresh table equals the fold, snapshots included.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.helpers import CREATE_T, assert_matches_fold, fresh_tables
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder, read_snapshots
from worker.engine.sweep import sweep
from worker.engine.tables import create_tables


@pytest.fixture
def sweep_settings(ddb_endpoint: str) -> Settings:
    return fresh_tables(ddb_endpoint, "sweep")


def store_of(settings: Settings, client: Any = None) -> Store:
    return Store.from_settings(client or aws.dynamodb(settings), settings)


def history(store: Store, budget: str, n: int) -> None:
    """n events over two months, one of them poison (rejected, I6)."""
    p = Persister(store)
    p.persist(budget, "TransactionCreated", "t1", CREATE_T)
    for i in range(n - 3):
        p.persist(
            budget, "TransactionUpdated", "t1", {"amount": i, "date": f"2026-0{1 + i % 2}-10"}
        )
    p.persist(budget, "TransactionCreated", "t2", {**CREATE_T, "category": "rent"})
    p.persist(budget, "TransactionDeleted", "ghost", {})


def rebuild(store: Store) -> Any:
    return Rebuilder(store).rebuild


def test_sweep_catches_up_every_lagging_budget(sweep_settings: Settings) -> None:
    store = store_of(sweep_settings)
    lagging = [f"lag-{i}" for i in range(12)]
    current = [f"cur-{i}" for i in range(3)]
    for b in lagging + current:
        history(store, b, 6)
    for b in current:  # caught up, snapshots never rebuilt: as a worker that died with
        Projector(store).catch_up(b)  # its rebuilds deferred leaves them
        assert store.dirty_months(b)

    result = sweep(store, rebuild(store), workers=4)

    assert (result.budgets, result.behind, result.dirty, result.failed) == (15, 12, 3, [])
    assert result.applied == 12 * 5 and result.rejected == 12
    for b in lagging + current:
        assert_matches_fold(store, b)
        assert store.pointer(b) == store.head(b)
        assert store.dirty_months(b) == []  # snapshots rebuilt as part of handling a budget
        assert read_snapshots(store, b).as_json()["snapshots"]
    again = sweep(store, rebuild(store), workers=2)
    assert (again.budgets, again.behind, again.dirty, again.applied) == (15, 0, 0, 0)


def test_failing_budgets_are_reported_and_the_rest_caught_up(sweep_settings: Settings) -> None:
    store = store_of(sweep_settings)
    budgets = [f"b-{i}" for i in range(8)]
    doomed = {"b-2", "b-5"}
    for b in budgets:
        history(store, b, 4)
    client = aws.dynamodb(sweep_settings)

    def refuse(params: dict[str, Any], **_: Any) -> None:
        # botocore layer: any step write for a doomed budget is refused by the "server"
        if any(f'"{b}"' in json.dumps(params) for b in doomed):
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "injected"}},
                "TransactWriteItems",
            )

    client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", refuse)
    faulty = store_of(sweep_settings, client)

    result = sweep(faulty, rebuild(faulty), workers=3)

    assert sorted(f.budget for f in result.failed) == sorted(doomed)
    assert all("AccessDenied" in f.error for f in result.failed)
    assert result.behind == 8
    for b in budgets:
        if b in doomed:
            assert store.pointer(b) is None  # nothing half-applied
        else:
            assert_matches_fold(store, b)
            assert store.pointer(b) == store.head(b)


def test_rebuild_into_a_fresh_projections_table(sweep_settings: Settings) -> None:
    """The documented procedure: point BUDGET_PROJECTIONS_TABLE at a new table, create it,
    sweep, verify nothing is behind and snapshots are rebuilt, then switch over."""
    old = store_of(sweep_settings)
    budgets = [f"r-{i}" for i in range(6)]
    for b in budgets:
        history(old, b, 7)
    sweep(old, rebuild(old), workers=2)

    fresh = dataclasses.replace(
        sweep_settings, projections_table=sweep_settings.projections_table + "-v2"
    )
    created = create_tables(aws.dynamodb(fresh), fresh)
    assert created.created == [fresh.projections_table]
    new = store_of(fresh)
    assert all(new.pointer(b) is None for b in budgets)

    result = sweep(new, rebuild(new), workers=3)

    assert (result.behind, result.failed) == (6, [])
    for b in budgets:
        assert_matches_fold(new, b)
        assert new.transactions(b) == old.transactions(b)
        assert new.rejected(b) == old.rejected(b)
        old_snaps, new_snaps = read_snapshots(old, b), read_snapshots(new, b)
        assert new_snaps.dirty_months == []
        assert all(e.fresh for e in new_snaps.entries)
        assert [e.snapshot for e in new_snaps.entries] == [e.snapshot for e in old_snaps.entries]


def cli(settings: Settings, *args: str) -> tuple[int, Any, str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": settings.endpoint_url or "",
        "AWS_REGION": settings.region,
        "BUDGET_EVENTS_TABLE": settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": settings.projections_table,
    }
    done = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    doc = json.loads(done.stdout) if "--json" in args and done.stdout.strip() else None
    return done.returncode, doc, done.stderr


def test_cli_sweep_and_status_behind(sweep_settings: Settings) -> None:
    store = store_of(sweep_settings)
    for b in ("c-1", "c-2", "c-3"):
        history(store, b, 3)
    code, behind, _ = cli(sweep_settings, "status", "--behind", "--json")
    assert code == 0 and sorted(s["budget"] for s in behind["budgets"]) == ["c-1", "c-2", "c-3"]
    assert all(s["lag_seconds"] >= 0 and s["behind"] == 3 for s in behind["budgets"])

    code, doc, err = cli(sweep_settings, "catch-up", "--all", "--parallel", "2", "--json")
    assert code == 0, err
    assert doc == {"budgets": 3, "behind": 3, "dirty": 0, "applied": 6, "rejected": 3, "failed": []}
    code, behind, _ = cli(sweep_settings, "status", "--behind", "--json")
    assert behind == {"budgets": []}


@pytest.mark.parametrize(
    "args",
    [("catch-up",), ("catch-up", "b1", "--all"), ("catch-up", "--all", "--parallel", "0")],
)
def test_cli_sweep_usage_errors(sweep_settings: Settings, args: tuple[str, ...]) -> None:
    code, _, err = cli(sweep_settings, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1
