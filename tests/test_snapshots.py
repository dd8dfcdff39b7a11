"""Snapshots (issue: monthly snapshots rebuilt from dirty markers), against DynamoDB Local.
Stored snapshots are compared with the pure computation over the fold of the event log."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import CREATE_T, assert_matches_fold, intents, interleaved_store, new_budget
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder, SnapshotStore, read_snapshots
from worker.errors import InfrastructureError
from worker.model import layout
from worker.model.fold import fold
from worker.model.snapshot_math import (
    all_snapshots,
    figures_at,
    last_day,
    month_snapshot,
    months_between,
)
from worker.proof.faults import Crash, Fault, FaultInjector, Rule


def expected_figures(store: Store, budget: str) -> list[tuple[Any, ...]]:
    state = fold(store.events(budget))
    return [s.figures() for s in all_snapshots(state.transactions.values())]


def assert_snapshots_match(store: Store, budget: str) -> None:
    view = read_snapshots(store, budget)
    assert view.dirty_months == []
    assert all(e.fresh for e in view.entries)
    assert [e.snapshot.figures() for e in view.entries if e.snapshot] == expected_figures(
        store, budget
    )
    pointer = store.pointer(budget)
    # Months rebuilt last carry the pointer; untouched earlier months keep their older id.
    assert all(
        e.snapshot and (e.snapshot.as_of_event or "") <= (pointer or "") for e in view.entries
    )


# -- pure figures ---------------------------------------------------------------------------


def test_month_figures_follow_the_contract() -> None:
    from worker.model.fold import Transaction

    def t(tid: str, date: str, amount: int, account: str, category: str) -> Transaction:
        return Transaction(tid, date, amount, account, category, None, None, "01")

    jan = [
        t("a", "2026-01-03", 1000, "chk", "pay"),
        t("b", "2026-01-20", -300, "card", "food"),
        t("c", "2026-01-31", -200, "chk", "food"),
    ]
    mar = [t("d", "2026-03-01", -50, "cash", "fun")]
    snaps = all_snapshots([*jan, *mar])
    assert [s.month for s in snaps] == ["2026-01", "2026-02", "2026-03"]
    jan_s, feb_s, mar_s = snaps
    assert (jan_s.income, jan_s.expenses, jan_s.net, jan_s.transaction_count) == (
        1000,
        -500,
        500,
        3,
    )
    assert jan_s.by_category == {"pay": 1000, "food": -500}
    assert jan_s.balances == {"chk": 800, "card": -300}
    assert (feb_s.income, feb_s.expenses, feb_s.transaction_count, feb_s.by_category) == (
        0,
        0,
        0,
        {},
    )
    assert feb_s.balances == jan_s.balances  # carried through an empty month
    assert mar_s.balances == {"chk": 800, "card": -300, "cash": -50}
    with pytest.raises(ValueError):
        month_snapshot("2026-02", jan, {})


def test_month_arithmetic() -> None:
    assert months_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert last_day("2024-02") == "2024-02-29" and last_day("2026-02") == "2026-02-28"


# -- rebuilder against DynamoDB Local -------------------------------------------------------


@settings(max_examples=12)
@given(st.lists(st.lists(intents, min_size=1, max_size=10), min_size=1, max_size=3))
def test_random_histories_rebuild_to_the_pure_computation(
    ddb_settings: Settings, rounds: list[list[tuple[str, str, dict[str, object]]]]
) -> None:
    """Rounds of events (creates, updates moving transactions across months, deletes, poison),
    each followed by catch-up and rebuild: snapshots always equal the pure computation."""
    store = Store.from_settings(aws.dynamodb(ddb_settings), ddb_settings)
    budget = new_budget()
    persister = Persister(store)
    for steps in rounds:
        for kind, tid, data in steps:
            persister.persist(budget, kind, tid, data)
        Projector(store).catch_up(budget)
        Rebuilder(store).rebuild(budget)
        assert_snapshots_match(store, budget)


def test_dirty_months_are_reported_not_presented_fresh(store: Store, budget: str) -> None:
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)  # 2026-01
    persister.persist(budget, "TransactionCreated", "t2", {**CREATE_T, "date": "2026-03-02"})
    Projector(store).catch_up(budget)
    Rebuilder(store).rebuild(budget)
    assert_snapshots_match(store, budget)
    persister.persist(budget, "TransactionUpdated", "t1", {"date": "2026-02-14"})
    Projector(store).catch_up(budget)
    view = read_snapshots(store, budget)
    assert view.dirty_months == ["2026-01", "2026-02"]
    # January is empty now: the range is February (dirty) and March (after a dirty month).
    assert [(e.month, e.fresh) for e in view.entries] == [("2026-02", False), ("2026-03", False)]
    Rebuilder(store).rebuild(budget)
    assert_snapshots_match(store, budget)


def test_deleting_the_last_months_transactions_shrinks_the_range(store: Store, budget: str) -> None:
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    persister.persist(budget, "TransactionCreated", "t2", {**CREATE_T, "date": "2026-05-05"})
    Projector(store).catch_up(budget)
    Rebuilder(store).rebuild(budget)
    assert [e.month for e in read_snapshots(store, budget).entries][-1] == "2026-05"
    persister.persist(budget, "TransactionDeleted", "t2", {})
    Projector(store).catch_up(budget)
    Rebuilder(store).rebuild(budget)
    assert_snapshots_match(store, budget)
    assert set(SnapshotStore(store).snapshots(budget)) == {"2026-01"}  # stale ones removed


def test_invalidation_during_the_rebuild_survives_it(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    """An event lands between the rebuilder's read and its marker delete: the marker
    survives, the month is reported dirty, and the next rebuild fixes the snapshot."""
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    Projector(store).catch_up(budget)

    def late_event() -> None:
        persister.persist(budget, "TransactionUpdated", "t1", {"amount": 99})
        Projector(store).catch_up(budget)

    slow, _ = interleaved_store(
        ddb_settings,
        store,
        "before-call.dynamodb.DeleteItem",
        late_event,
        when=lambda params: b"DIRTY#" in (params.get("body") or b""),
    )
    result = Rebuilder(slow).rebuild(budget)
    assert result.survived == ["2026-01"] and result.cleared == []
    view = read_snapshots(store, budget)
    assert view.dirty_months == ["2026-01"] and not view.entries[0].fresh
    assert view.entries[0].snapshot.income == 0  # built before the late event: not fresh
    Rebuilder(store).rebuild(budget)
    assert_snapshots_match(store, budget)
    assert read_snapshots(store, budget).entries[0].snapshot.income == 99


def test_a_slow_rebuild_never_overwrites_a_newer_one(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    Projector(store).catch_up(budget)

    def newer_rebuild_first() -> None:
        persister.persist(budget, "TransactionUpdated", "t1", {"amount": -7})
        Projector(store).catch_up(budget)
        Rebuilder(store).rebuild(budget)

    slow_store, fired = interleaved_store(
        ddb_settings, store, "before-call.dynamodb.PutItem", newer_rebuild_first
    )
    slow = Rebuilder(slow_store)
    # The slow rebuild computed at the old pointer and passed its pointer re-check; a newer
    # event and a complete newer rebuild land before its first write.
    result = slow.rebuild(budget)
    assert fired and result.rebuilt == []  # its stale write was refused
    assert_snapshots_match(store, budget)
    assert read_snapshots(store, budget).entries[0].snapshot.expenses == -7


def test_a_slow_rebuild_overtaken_by_one_that_died_halfway_leaves_its_markers(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    """Found by the simulation (seed 300692): a slow rebuild's first write is refused by a
    newer rebuild that then died after its first write. The slow one wrote its later months
    at its older pointer (as_of_event decreasing: torn, to a reader) and cleared the markers,
    so no later rebuild went back over those months and they stayed not fresh for good."""
    persister = Persister(store)
    for n, month in enumerate(("01", "02", "03")):
        persister.persist(
            budget, "TransactionCreated", f"t{n}", {**CREATE_T, "date": f"2026-{month}-10"}
        )
    Projector(store).catch_up(budget)
    Rebuilder(store).rebuild(budget)
    persister.persist(budget, "TransactionUpdated", "t0", {"amount": -3})  # dirties January
    Projector(store).catch_up(budget)

    def newer_rebuild_dies_after_its_first_write() -> None:
        persister.persist(budget, "TransactionUpdated", "t2", {"amount": -5})  # dirties March
        Projector(store).catch_up(budget)
        dying = aws.dynamodb(ddb_settings)
        FaultInjector([Rule("PutItem", Fault.CRASH_AFTER)]).install(dying)
        with pytest.raises(Crash):
            Rebuilder(Store(dying, store.events_table, store.projections_table)).rebuild(budget)

    slow_store, fired = interleaved_store(
        ddb_settings,
        store,
        "before-call.dynamodb.PutItem",
        newer_rebuild_dies_after_its_first_write,
    )
    result = Rebuilder(slow_store).rebuild(budget)
    assert fired and result.rebuilt == [] and result.cleared == []
    assert result.survived == ["2026-01"]  # the markers it read; the step's is there too
    assert read_snapshots(store, budget).dirty_months == ["2026-01", "2026-03"]
    Rebuilder(store).rebuild(budget)  # the next rebuild goes over every month again
    assert_snapshots_match(store, budget)


def test_month_queries_use_the_index_not_scans(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    persister = Persister(store)
    for n in range(30):
        persister.persist(
            budget,
            "TransactionCreated",
            f"t{n}",
            {**CREATE_T, "date": f"2026-{1 + n % 6:02d}-0{1 + n % 9}"},
        )
    Projector(store).catch_up(budget)
    Rebuilder(store).rebuild(budget)
    persister.persist(budget, "TransactionUpdated", "t29", {"amount": 5})  # dirties one month
    Projector(store).catch_up(budget)
    client = aws.dynamodb(ddb_settings)
    calls: list[tuple[str, str | None, str]] = []

    def record(model: Any, params: Any, **_: Any) -> None:
        import json

        body = json.loads(params.get("body") or b"{}")
        calls.append((model.name, body.get("IndexName"), body.get("KeyConditionExpression", "")))

    client.meta.events.register("before-call.dynamodb", record)
    Rebuilder(Store(client, store.events_table, store.projections_table)).rebuild(budget)
    assert not [c for c in calls if c[0] == "Scan"]
    transaction_reads = [c for c in calls if c[0] == "Query" and "date_key" in c[2]]
    assert transaction_reads and all(c[1] == "by_date" for c in transaction_reads)
    assert not [c for c in calls if c[0] == "Query" and "TXN#" in c[2]]
    assert_snapshots_match(store, budget)


def test_rebuild_failure_never_touches_the_projection(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    Projector(store).catch_up(budget)
    broken = aws.dynamodb(ddb_settings)
    FaultInjector([Rule("PutItem", Fault.THROTTLE, limit=None)]).install(broken)
    with pytest.raises(InfrastructureError):
        Rebuilder(Store(broken, store.events_table, store.projections_table)).rebuild(budget)
    assert_matches_fold(store, budget)
    assert store.pointer(budget) == store.head(budget)
    assert read_snapshots(store, budget).dirty_months == ["2026-01"]
    Rebuilder(store).rebuild(budget)
    assert_snapshots_match(store, budget)


def test_a_rebuild_caught_halfway_is_not_presented_fresh(store: Store, budget: str) -> None:
    """Months rebuilt at one pointer followed by a month still from an older pointer (a reader
    caught a rebuild between two writes): the running balances after the tear are not fresh."""
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)  # 2026-01
    persister.persist(budget, "TransactionCreated", "t2", {**CREATE_T, "date": "2026-03-03"})
    Projector(store).catch_up(budget)
    Rebuilder(store).rebuild(budget)
    store.client.update_item(  # March now looks older than February, as mid-rebuild
        TableName=store.projections_table,
        Key=layout.key(budget, "SNAP#2026-03"),
        UpdateExpression="SET as_of_event = :old",
        ExpressionAttributeValues={":old": layout.s("00000000000000000000000000")},
    )
    view = read_snapshots(store, budget)
    assert [(e.month, e.fresh) for e in view.entries] == [
        ("2026-01", True),
        ("2026-02", True),
        ("2026-03", False),
    ]


def test_a_slow_rebuild_never_recreates_a_month_a_newer_one_found_empty(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    """Found by the simulation (seeds 500163, 500183): a slow rebuild saw January in range;
    before its first write, a step emptied January and a newer rebuild removed its snapshot
    and cleared its marker. The slow write then recreated January (`attribute_not_exists`) at
    the older pointer, with no marker; once a later step brought January back, a reader that
    read the markers before that step presented the stale January fresh."""
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)  # 2026-01
    persister.persist(budget, "TransactionCreated", "t2", {**CREATE_T, "date": "2026-03-02"})
    Projector(store).catch_up(budget)
    Rebuilder(store).rebuild(budget)
    persister.persist(budget, "TransactionUpdated", "t1", {"amount": -3})  # dirties January
    Projector(store).catch_up(budget)

    def january_emptied_and_rebuilt() -> None:
        persister.persist(budget, "TransactionUpdated", "t1", {"date": "2026-02-14"})
        Projector(store).catch_up(budget)
        Rebuilder(store).rebuild(budget)

    slow_store, fired = interleaved_store(
        ddb_settings, store, "before-call.dynamodb.PutItem", january_emptied_and_rebuilt
    )
    Rebuilder(slow_store).rebuild(budget)
    assert fired
    assert "2026-01" not in SnapshotStore(store).snapshots(budget)  # not recreated
    assert_snapshots_match(store, budget)

    def january_back() -> None:  # between the reader's snapshot and month-range queries
        persister.persist(budget, "TransactionUpdated", "t2", {"date": "2026-01-20"})
        Projector(store).catch_up(budget)

    reader_store, fired = interleaved_store(
        ddb_settings,
        store,
        "before-call.dynamodb.Query",
        january_back,
        when=lambda params: b"by_date" in (params.get("body") or b""),
    )
    view = read_snapshots(reader_store, budget)
    assert fired
    assert not any(e.fresh for e in view.entries if e.month == "2026-01")


def test_a_month_back_in_range_after_the_marker_read_is_not_presented_fresh(
    ddb_settings: Settings, store: Store, budget: str
) -> None:
    """Found by the simulation (seed 700346): April's only transaction was deleted and
    nothing rebuilt yet, so March's snapshot (an empty month between February and April) is
    a leftover outside the range, and April's marker does not cover it. A reader read the
    markers; then a step moved February's transaction into March (marking February and
    March); then the reader read the snapshots and the range, took March in and presented
    the leftover fresh. Every month presented fresh must equal its computation at a pointer
    the read saw: before the step or after it."""
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", {**CREATE_T, "date": "2026-02-10"})
    persister.persist(budget, "TransactionCreated", "t2", {**CREATE_T, "date": "2026-04-04"})
    Projector(store).catch_up(budget)
    Rebuilder(store).rebuild(budget)
    persister.persist(budget, "TransactionDeleted", "t2", {})
    Projector(store).catch_up(budget)
    assert SnapshotStore(store).markers(budget).keys() == {"2026-04"}  # March left over
    before = store.pointer(budget)

    def february_to_march() -> None:
        persister.persist(budget, "TransactionUpdated", "t1", {"date": "2026-03-12"})
        Projector(store).catch_up(budget)

    reader_store, fired = interleaved_store(  # just after the reader's marker query
        ddb_settings,
        store,
        "before-call.dynamodb.Query",
        february_to_march,
        when=lambda params: b"SNAP#" in (params.get("body") or b""),
    )
    view = read_snapshots(reader_store, budget)
    assert fired
    events = store.events(budget)
    at = [figures_at(events, p) for p in (before, store.pointer(budget))]
    for entry in view.entries:
        if entry.fresh:
            assert entry.snapshot is not None
            assert entry.snapshot.figures() in [f.get(entry.month) for f in at]
    Rebuilder(store).rebuild(budget)
    assert_snapshots_match(store, budget)
