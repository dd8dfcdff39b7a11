"""The Lambda handler against DynamoDB Local, fed genuine records from DynamoDB Local's stream
converted to Lambda's event shape: the earliest record of a budget neither caught up nor queued
is reported, later budgets are still caught up, a retry from there converges to the fold; a
queued budget reports nothing; skipped, malformed and TTL-delete records never fail a batch;
two handlers at once over the same budgets converge; snapshot rebuilds stay within the time
left."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from tests.helpers import CREATE_T, Queue, assert_matches_fold, fresh_tables, new_budget
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder, read_snapshots
from worker.stream import lambda_handler, records, settle
from worker.stream.local_driver import stream_arn
from worker.stream.shard_reads import read_all

pytestmark = pytest.mark.ddb_local


class Clock:
    """A Lambda context whose remaining time is set by the test."""

    def __init__(self, millis: int = 60_000) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


@pytest.fixture(scope="module")
def settings(ddb_endpoint: str) -> Settings:
    return fresh_tables(ddb_endpoint, "lambda")


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store.from_settings(aws.dynamodb(settings), settings)


def persist_some(store: Store, budgets: list[str], rounds: int = 2) -> None:
    persister = Persister(store)
    for n in range(rounds):
        for budget in budgets:
            persister.persist(budget, "TransactionCreated", f"t{n}", {**CREATE_T, "amount": n})
    persister.persist(budgets[0], "TransactionUpdated", "missing", {"amount": 1})  # rejected


def lambda_records(settings: Settings, budgets: list[str]) -> list[dict[str, Any]]:
    """The stream's genuine records about `budgets`, in Lambda's shape, in stream order."""
    client = aws.dynamodb(settings)
    arn = stream_arn(client, settings.events_table)
    raw = read_all(aws.dynamodb_streams(settings), arn)
    mine = [r for r in raw if r["dynamodb"]["Keys"]["pk"]["S"] in budgets]
    return [records.encode(r, records.LAMBDA, stream_arn=arn) for r in mine]


def make_handler(
    store: Store,
    failing: set[str] | None = None,
    queue: Any = None,
    *,
    concurrency: int = 4,
) -> lambda_handler.StreamHandler:
    projector = Projector(store)

    def catch_up(budget: str) -> Any:
        if budget in (failing or set()):
            raise RuntimeError(f"{budget}: throttled for good")
        return projector.catch_up(budget)

    return lambda_handler.StreamHandler(
        settle.per_budget(catch_up, concurrency), queue, Rebuilder(store).rebuild
    )


def caught_up(store: Store, budget: str) -> None:
    assert store.pointer(budget) == store.head(budget)
    assert_matches_fold(store, budget)


def first_event_sequence(event_records: list[dict[str, Any]], budget: str) -> str:
    return next(
        r["dynamodb"]["SequenceNumber"]
        for r in event_records
        if r["dynamodb"]["Keys"]["pk"]["S"] == budget
        and r["dynamodb"]["Keys"]["sk"]["S"].startswith("EVENT#")
    )


def test_records_have_lambdas_shape(settings: Settings, store: Store, budget: str) -> None:
    persist_some(store, [budget], rounds=1)
    [event_record, *_] = lambda_records(settings, [budget])
    assert event_record["eventSource"] == "aws:dynamodb"
    assert event_record["eventSourceARN"].startswith("arn:aws:dynamodb:")
    assert isinstance(event_record["dynamodb"]["ApproximateCreationDateTime"], float)
    assert event_record["eventName"] in ("INSERT", "MODIFY")


def test_failing_budget_reports_its_earliest_record_then_a_retry_converges(
    settings: Settings, store: Store
) -> None:
    a, b, c = (new_budget() for _ in range(3))
    persist_some(store, [a, b, c])
    event_records = lambda_records(settings, [a, b, c])
    handler = make_handler(store, failing={b})

    response = handler({"Records": event_records}, Clock())

    failed_at = first_event_sequence(event_records, b)
    assert response == {"batchItemFailures": [{"itemIdentifier": failed_at}]}
    caught_up(store, a)
    caught_up(store, c)  # named after b in the batch, still caught up
    assert store.pointer(b) is None
    # Lambda retries from the reported record on; the records after it come again.
    retry = [r for r in event_records if int(r["dynamodb"]["SequenceNumber"]) >= int(failed_at)]
    assert make_handler(store)({"Records": retry}, Clock()) == {"batchItemFailures": []}
    for budget in (a, b, c):
        caught_up(store, budget)


def test_a_queued_budget_reports_nothing(settings: Settings, store: Store, budget: str) -> None:
    persist_some(store, [budget])
    queue = Queue()
    response = make_handler(store, failing={budget}, queue=queue)(
        {"Records": lambda_records(settings, [budget])}, Clock()
    )
    assert response == {"batchItemFailures": []}
    assert queue.items == [budget]


def test_a_refusing_queue_reports_the_budget(settings: Settings, store: Store, budget: str) -> None:
    persist_some(store, [budget])
    event_records = lambda_records(settings, [budget])
    response = make_handler(store, failing={budget}, queue=Queue(fail=True))(
        {"Records": event_records}, Clock()
    )
    assert response == {
        "batchItemFailures": [{"itemIdentifier": first_event_sequence(event_records, budget)}]
    }


def test_skipped_malformed_and_ttl_records_never_fail_the_batch(
    settings: Settings, store: Store, budget: str
) -> None:
    persist_some(store, [budget], rounds=1)
    client = aws.dynamodb(settings)
    events = store.events(budget)
    # A genuine REMOVE of an event item (the app never deletes events; an operator might).
    client.delete_item(
        TableName=settings.events_table,
        Key={"pk": {"S": budget}, "sk": {"S": f"EVENT#{events[0].event_id}"}},
    )
    genuine = lambda_records(settings, [budget])
    removes = [r for r in genuine if r["eventName"] == "REMOVE"]
    assert removes
    ttl = copy.deepcopy(removes[0])
    ttl["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    foreign = copy.deepcopy(genuine[0])
    foreign["dynamodb"]["Keys"] = {"id": {"N": "7"}}
    malformed = [
        {"eventName": "INSERT"},
        "not a record",
        {
            **copy.deepcopy(genuine[0]),
            "dynamodb": {"Keys": {"pk": {"S": ""}, "sk": {"S": "HEAD"}}, "SequenceNumber": "42"},
        },
    ]
    batch = [*genuine, ttl, foreign, *malformed]
    handler = make_handler(store)
    report = handler.handle_stream(batch, Clock())
    assert report.failures == []
    assert report.malformed == 3
    kinds = {r["dynamodb"]["Keys"]["sk"]["S"].split("#")[0] for r in genuine}
    assert report.skipped[records.HEAD] >= 1 and "HEAD" in kinds
    assert report.skipped[records.REMOVE] == len(removes)
    assert report.skipped[records.TTL] == 1
    assert report.skipped[records.FOREIGN] == 1
    assert report.budgets == 1 and report.caught_up == 1


def test_two_handlers_at_once_over_the_same_budgets_converge(
    settings: Settings, store: Store
) -> None:
    budgets = [new_budget() for _ in range(6)]
    persist_some(store, budgets, rounds=5)
    event_records = lambda_records(settings, budgets)
    start = threading.Barrier(2)
    responses: list[dict[str, Any]] = []

    def invoke(batch: list[dict[str, Any]]) -> None:
        handler = make_handler(Store.from_settings(aws.dynamodb(settings), settings))
        start.wait()
        responses.append(handler({"Records": batch}, Clock()))

    # As with ParallelizationFactor > 1 or a retry racing a bisected half: overlapping batches.
    threads = [
        threading.Thread(target=invoke, args=(event_records,)),
        threading.Thread(target=invoke, args=(list(reversed(event_records)),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert responses == [{"batchItemFailures": []}] * 2
    for budget in budgets:
        caught_up(store, budget)
        assert len(store.rejected(budget)) == (1 if budget == budgets[0] else 0)


def test_snapshot_rebuilds_stay_within_the_time_left(
    settings: Settings, store: Store, budget: str
) -> None:
    persist_some(store, [budget])
    event_records = lambda_records(settings, [budget])
    short = make_handler(store).handle_stream(event_records, Clock(millis=500))
    assert (short.rebuilt, short.rebuilds_left) == (0, 1)
    assert read_snapshots(store, budget).dirty_months  # markers kept for later (I4)
    ample = make_handler(store).handle_stream(event_records, Clock(millis=60_000))
    assert (ample.rebuilt, ample.rebuilds_left) == (1, 0)
    assert read_snapshots(store, budget).dirty_months == []


def test_retry_queue_messages_report_what_still_fails(store: Store, budget: str) -> None:
    persist_some(store, [budget])
    handler = make_handler(store)
    good = {"eventSource": "aws:sqs", "messageId": "m1", "body": f'{{"budget": "{budget}"}}'}
    bad = {"eventSource": "aws:sqs", "messageId": "m2", "body": "not json"}
    assert handler({"Records": [good, bad]}, Clock()) == {
        "batchItemFailures": [{"itemIdentifier": "m2"}]
    }
    caught_up(store, budget)
