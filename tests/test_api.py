"""The public Python API (`worker`): one contract, run on moto and on DynamoDB Local.

Like a store's shared recorder tests, every test here runs against both backends, so the API
behaves the same on the fast fake and on the real server. DynamoDB state is compared with the
pure fold of the event log.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

import worker
from tests.helpers import CREATE_T, assert_matches_fold, raw_client
from worker import (
    BudgetWorker,
    EventConflict,
    InfrastructureError,
    InvalidInput,
    PersistFailed,
    PersistStatus,
    Settings,
    StaleProjection,
)
from worker.proof.faults import Fault, FaultInjector, Rule


@pytest.fixture(params=["moto", "ddb_local"])
def settings(request: pytest.FixtureRequest) -> Iterator[Settings]:
    if request.param == "moto":
        yield request.getfixturevalue("moto_settings")
    else:
        yield request.getfixturevalue("ddb_settings")


@pytest.fixture
def api(settings: Settings) -> BudgetWorker:
    return BudgetWorker(settings)


def faulty_client(settings: Settings, *rules: Rule) -> object:
    """A client of the same server whose botocore hooks inject `rules`."""
    client = raw_client(settings)
    FaultInjector(list(rules), seed=7).install(client)
    return client


def test_persist_catch_up_and_validated_read(api: BudgetWorker, budget: str) -> None:
    first = api.persist(budget, "TransactionCreated", "t1", CREATE_T)
    api.persist(budget, "TransactionUpdated", "t1", {"amount": -120})
    api.persist(budget, "TransactionCreated", "t2", {**CREATE_T, "date": "2026-02-03"})
    assert first.status is PersistStatus.CREATED

    caught = api.catch_up(budget)
    assert (caught.applied, caught.rejected, caught.pointer) == (3, 0, caught.head)
    expected = assert_matches_fold(api.store, budget)

    view = api.transactions(budget, catch_up=False)
    assert view.as_of_event == caught.head
    assert {t.transaction_id: t for t in view.transactions} == dict(expected.transactions)


def test_a_retried_intent_is_stored_once(api: BudgetWorker, budget: str) -> None:
    first = api.persist(budget, "TransactionCreated", "t1", CREATE_T)
    again = api.persist(budget, "TransactionCreated", "t1", CREATE_T, event_id=first.event_id)
    assert again.status is PersistStatus.DUPLICATE
    assert [e.event_id for e in api.store.events(budget)] == [first.event_id]


def test_an_unknown_outcome_names_the_id_that_makes_the_retry_safe(
    settings: Settings, budget: str
) -> None:
    # Every answer is lost after the server committed: the caller gives up not knowing.
    lossy = BudgetWorker(
        settings,
        client=faulty_client(settings, Rule("TransactWriteItems", Fault.LOSE_RESPONSE, limit=None)),  # type: ignore[arg-type]
    )
    with pytest.raises(PersistFailed) as failed:
        lossy.persist(budget, "TransactionCreated", "t1", CREATE_T)
    assert failed.value.outcome_unknown
    assert "--event-id" not in str(failed.value)  # library messages carry no CLI wording

    retried = BudgetWorker(settings).persist(
        budget, "TransactionCreated", "t1", CREATE_T, event_id=failed.value.retry_event_id
    )
    assert retried.status is PersistStatus.DUPLICATE
    assert [e.event_id for e in BudgetWorker(settings).store.events(budget)] == [
        failed.value.retry_event_id
    ]


def test_same_id_different_content_is_a_conflict(api: BudgetWorker, budget: str) -> None:
    first = api.persist(budget, "TransactionCreated", "t1", CREATE_T)
    with pytest.raises(EventConflict):
        api.persist(
            budget, "TransactionCreated", "t1", {**CREATE_T, "amount": 1}, event_id=first.event_id
        )
    assert len(api.store.events(budget)) == 1


def test_invalid_input_writes_nothing(api: BudgetWorker, budget: str) -> None:
    with pytest.raises(InvalidInput):
        api.persist(budget, "TransactionCreated", "t1", {"amount": "twelve"})
    with pytest.raises(InvalidInput):
        api.persist(budget, "TransactionPaid", "t1", CREATE_T)
    assert api.store.events(budget) == []
    assert api.store.head(budget) is None


def test_a_stale_read_names_pointer_and_head(api: BudgetWorker, budget: str) -> None:
    api.persist(budget, "TransactionCreated", "t1", CREATE_T)
    head = api.store.head(budget)
    with pytest.raises(StaleProjection) as stale:
        api.transactions(budget, catch_up=False)
    assert (stale.value.pointer, stale.value.head) == (None, head)
    # With catch-up (the default) the same read repairs the projection and succeeds.
    assert api.transactions(budget).as_of_event == head


def test_snapshots_are_rebuilt_on_request(api: BudgetWorker, budget: str) -> None:
    api.persist(budget, "TransactionCreated", "t1", CREATE_T)
    api.catch_up(budget)
    before = api.snapshots(budget)
    assert before.dirty_months == [CREATE_T["date"][:7]]
    after = api.snapshots(budget, rebuild=True)
    assert after.dirty_months == []
    (entry,) = after.entries
    assert entry.fresh and entry.snapshot is not None
    assert entry.snapshot.net == CREATE_T["amount"]


def test_botocore_failures_surface_as_infrastructure_errors(settings: Settings) -> None:
    missing = BudgetWorker(
        Settings(
            events_table="no-such-events",
            projections_table="no-such-projections",
            region=settings.region,
            endpoint_url=settings.endpoint_url,
        )
    )
    with pytest.raises(InfrastructureError, match="table is missing") as failed:
        missing.transactions("b1")
    assert isinstance(failed.value.__cause__, ClientError)


def test_create_tables_is_idempotent(api: BudgetWorker, settings: Settings) -> None:
    result = api.create_tables()
    assert result.created == []
    assert set(result.existing) == {settings.events_table, settings.projections_table}


def test_every_public_name_is_documented_and_importable() -> None:
    for name in worker.__all__:
        value = getattr(worker, name)
        if name == "__version__":
            continue
        doc = inspect.getdoc(value) or ""
        # a dataclass without a docstring gets its signature as one: that does not count
        assert doc and not doc.startswith(f"{name}("), f"{name} has no docstring"
    methods = [m for m, v in vars(BudgetWorker).items() if callable(v) and not m.startswith("_")]
    for name in methods:
        assert inspect.getdoc(getattr(BudgetWorker, name)), f"BudgetWorker.{name}"
    with pytest.raises(AttributeError):
        _ = worker.Persister  # internal: reach it through worker.engine.persist
