"""Test oracles and generators shared by the suites."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from worker.config import Settings
from worker.engine.reads import Store
from worker.local.scratch import scratch_tables
from worker.model.fold import Projection
from worker.proof.oracle import projection_differences

TXN_IDS = ["t1", "t2", "t3", "t4"]
MONTHS = ["2026-01", "2026-02", "2026-03"]


def assert_matches_fold(store: Store, budget: str) -> Projection:
    """The projections table equals the pure fold of the event log up to the pointer, and
    (after a catch-up) the pointer equals the head."""
    expected, problems = projection_differences(store, budget)
    assert problems == []
    return expected


dates = st.builds(
    lambda m, d: f"{m}-{d:02d}", st.sampled_from(MONTHS), st.integers(min_value=1, max_value=28)
)
amounts = st.integers(min_value=-100_000, max_value=100_000)
texts = st.sampled_from(["checking", "card", "cash"])
categories = st.sampled_from(["food", "rent", "salary", "fun"])
optional_text = st.one_of(st.none(), st.text(max_size=8))


def created_data() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"date": dates, "amount": amounts, "account": texts, "category": categories},
        optional={"payee": st.text(max_size=8), "memo": st.text(max_size=8)},
    )


UPDATABLE = {
    "date": dates,
    "amount": amounts,
    "account": texts,
    "category": categories,
    "payee": optional_text,
    "memo": optional_text,
}


def updated_data() -> st.SearchStrategy[dict[str, Any]]:
    """A non-empty subset of fields: one required, any of the others optional."""
    return st.sampled_from(sorted(UPDATABLE)).flatmap(
        lambda first: st.fixed_dictionaries(
            {first: UPDATABLE[first]},
            optional={k: v for k, v in UPDATABLE.items() if k != first},
        )
    )


intents = st.one_of(
    st.tuples(st.just("TransactionCreated"), st.sampled_from(TXN_IDS), created_data()),
    st.tuples(st.just("TransactionUpdated"), st.sampled_from(TXN_IDS), updated_data()),
    st.tuples(st.just("TransactionDeleted"), st.sampled_from(TXN_IDS), st.just({})),
)


CREATE_T = {"date": "2026-01-15", "amount": -1250, "account": "checking", "category": "food"}


def new_budget() -> str:
    import uuid

    return f"budget-{uuid.uuid4().hex[:10]}"


def persisted_history(
    settings: Settings, steps: list[tuple[str, str, dict[str, Any]]]
) -> tuple[Store, str]:
    """A new budget on `settings`' tables with `steps` (intents) persisted in order."""
    from worker.engine import aws
    from worker.engine.persist import Persister

    store = Store.from_settings(aws.dynamodb(settings), settings)
    budget = new_budget()
    persister = Persister(store)
    for kind, tid, data in steps:
        persister.persist(budget, kind, tid, data)
    return store, budget


def interleaved_store(
    settings: Any, store: Store, event: str, action: Any, when: Any = None
) -> tuple[Store, list[bool]]:
    """A store on its own client that runs `action` once, just before the first call matching
    the botocore `event` (and `when(params)`, if given): another actor's work wedged between
    this actor's reads and its write. Returns the store and a list that is non-empty once
    `action` ran."""
    from worker.engine import aws

    client = aws.dynamodb(settings)
    fired: list[bool] = []

    def hook(params: Any, **_: Any) -> None:
        if not fired and (when is None or when(params)):
            fired.append(True)
            action()

    client.meta.events.register(event, hook)
    return Store(client, store.events_table, store.projections_table), fired


def raw_client(settings: Settings) -> Any:
    """A plain boto3 DynamoDB client of the same server (for hooks a test installs itself)."""
    import boto3

    return boto3.client(
        "dynamodb",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def fresh_tables(endpoint: str, prefix: str) -> Settings:
    """Settings naming new, uniquely named tables on `endpoint`, created and active."""
    return scratch_tables(endpoint, prefix)


class Queue:
    """A retry queue for the record processor and the Lambda handler: records what it was
    handed, or refuses everything (`fail`), as SQS does when it is down."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.items: list[str] = []

    def enqueue(self, budget: str, reason: str) -> None:
        if self.fail:
            raise RuntimeError("sqs down")
        self.items.append(budget)
