"""The retry queue against ElasticMQ, a real SQS-compatible server, with DynamoDB Local behind.

tests/test_retry_queue.py runs the same code on moto, which is quick but in-process and fakes
what matters most here: time. These tests run the consumer `run` starts
(`start_queue_consumer`, on its own thread, with its own clients built from settings) against
a networked queue whose visibility timeouts and redrive to the dead-letter queue are real, and
check what docs/ARCHITECTURE.md ("Retry queue") and the retry queue's docstring claim for SQS:
a message is deleted only after its budget caught up; a failure comes back after the
visibility timeout; after `maxReceiveCount` receives it moves to the dead-letter queue; a
failed delete only costs a harmless second catch-up.

The queues are shaped like infra/budget-worker.yaml's (a redrive policy naming the dead-letter
queue's ARN), with a 1 s visibility timeout instead of 120 s and 3 receives instead of 10 so a
test takes seconds. Faults are injected at the botocore layer on the consumer's own clients.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from xml.etree import ElementTree

import boto3
import pytest
from structlog.testing import capture_logs

from tests.elasticmq_server import ELASTICMQ_VERSION, POM_DIR, REGION, server_jar
from tests.helpers import CREATE_T, assert_matches_fold, persisted_history
from worker import metrics
from worker.config import Settings
from worker.engine import aws
from worker.engine.projector import Projector
from worker.proof.faults import Fault, FaultInjector, Rule
from worker.stream.retry_queue import SqsRetryQueue, decode
from worker.stream.run import start_queue_consumer

pytestmark = pytest.mark.ddb_local

MAVEN_NS = "http://maven.apache.org/POM/4.0.0"
VISIBILITY_SECONDS = 1
MAX_RECEIVES = 3
HISTORY = [
    ("TransactionCreated", "t1", CREATE_T),
    ("TransactionCreated", "t2", {**CREATE_T, "date": "2026-02-03", "amount": 90000}),
    ("TransactionUpdated", "t1", {"amount": -1300, "memo": "corrected"}),
    ("TransactionDeleted", "t2", {}),
    ("TransactionUpdated", "t2", {"amount": 1}),  # poison: t2 is deleted (rejected, I6)
]


@dataclass(frozen=True, slots=True)
class Queues:
    client: Any
    url: str
    dlq_url: str

    def counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the retry queue (or `url`)."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def dead_letters(self) -> list[str]:
        """The bodies in the dead-letter queue (a redrive happens within the receive that
        triggers it, so no wait is needed)."""
        response = self.client.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        return [m["Body"] for m in response.get("Messages", [])]


@pytest.fixture
def queues(sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Queues:
    """A fresh retry queue and dead-letter queue on ElasticMQ. The worker's SQS client takes
    its endpoint from `AWS_ENDPOINT_URL_SQS`, as a deployment pointing it elsewhere would."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs_endpoint)
    client = boto3.client(
        "sqs",
        endpoint_url=sqs_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"budget-retry-{uuid.uuid4().hex[:8]}"
    dlq_url = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES}
    url = client.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_SECONDS),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    return Queues(client, url, dlq_url)


@pytest.fixture
def settings(ddb_settings: Settings, queues: Queues) -> Settings:
    return replace(ddb_settings, retry_queue_url=queues.url)


@dataclass(slots=True)
class ConsumerClients:
    """What the consumer's own botocore clients did: the receive count of every message it
    received, and how many projector steps (TransactWriteItems) had been sent each time it
    asked SQS to delete a message."""

    dynamodb_faults: FaultInjector
    sqs_faults: FaultInjector
    receive_counts: list[int]
    steps: list[int]
    steps_at_delete: list[int]


@pytest.fixture
def consumer_clients(monkeypatch: pytest.MonkeyPatch) -> ConsumerClients:
    """Wraps `aws.dynamodb` and `aws.sqs` so every client the consumer builds carries a fault
    injector (no rules until a test adds them) and the observing hooks."""
    seen = ConsumerClients(FaultInjector([]), FaultInjector([]), [], [], [])
    make_dynamodb, make_sqs = aws.dynamodb, aws.sqs

    def dynamodb(settings: Settings) -> Any:
        client = seen.dynamodb_faults.install(make_dynamodb(settings))
        client.meta.events.register(
            "after-call.dynamodb.TransactWriteItems", lambda **_: seen.steps.append(1)
        )
        return client

    def on_receive(parsed: dict[str, Any], **_: Any) -> None:
        for message in parsed.get("Messages", []):
            seen.receive_counts.append(int(message["Attributes"]["ApproximateReceiveCount"]))

    def on_delete(**_: Any) -> None:
        seen.steps_at_delete.append(len(seen.steps))

    def sqs(settings: Settings) -> Any:
        client = seen.sqs_faults.install(make_sqs(settings))
        client.meta.events.register("after-call.sqs.ReceiveMessage", on_receive)
        client.meta.events.register_first("before-call.sqs.DeleteMessage", on_delete)
        return client

    monkeypatch.setattr(aws, "dynamodb", dynamodb)
    monkeypatch.setattr(aws, "sqs", sqs)
    return seen


@pytest.fixture
def emitted() -> Iterator[list[dict[str, Any]]]:
    """Metrics on (EMF), as `run` configures them, collected instead of printed."""
    documents: list[dict[str, Any]] = []
    metrics.configure(env={"BUDGET_METRICS": "emf"})
    metrics.current()._sink = documents.append
    yield documents
    metrics.configure(env={})


def total(documents: list[dict[str, Any]], name: str) -> float:
    """The sum of metric `name` over the documents (EMF holds a value or a list of them)."""
    values = [document.get(name, []) for document in documents]
    return sum(sum(v) if isinstance(v, list) else v for v in values)


@contextmanager
def running_consumer(settings: Settings) -> Iterator[None]:
    """The consumer `run` starts, long-polling 1 s so stopping it is quick."""
    stop = threading.Event()
    thread = start_queue_consumer(settings, stop, wait_seconds=1)
    assert thread is not None
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive()


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def failing_receives(logs: list[dict[str, Any]], budget: str) -> list[int]:
    return [
        line["receive_count"]
        for line in logs
        if line["event"] == "queued budget still failing" and line.get("budget") == budget
    ]


def enqueue(settings: Settings, budget: str) -> None:
    """Hand `budget` over the way the record processor does after a failed catch-up."""
    SqsRetryQueue(aws.sqs(settings), str(settings.retry_queue_url)).enqueue(budget, "test")


def test_queued_budget_is_caught_up_by_the_run_consumer_and_deleted(
    settings: Settings,
    queues: Queues,
    consumer_clients: ConsumerClients,
    emitted: list[dict[str, Any]],
) -> None:
    """Caught up (snapshots included), deleted once, and counted in the metrics like a stream
    batch's catch-up: the budgets the queue holds are the ones most behind, so leaving them out
    of `EventsApplied` and `ProjectionLagSeconds` would hide exactly the lag the alarm is for."""
    store, budget = persisted_history(settings, HISTORY)
    enqueue(settings, budget)
    with running_consumer(settings):
        eventually(lambda: queues.counts() == (0, 0), "the message deleted")
    assert consumer_clients.receive_counts == [1]
    assert len(consumer_clients.steps_at_delete) == 1  # deleted once, after its steps
    expected = assert_matches_fold(store, budget)
    assert expected.pointer == store.head(budget)
    assert store.dirty_months(budget) == []  # the queue's path rebuilds snapshots inline
    assert queues.dead_letters() == []
    assert (total(emitted, "EventsApplied"), total(emitted, "EventsRejected")) == (4, 1)
    assert any("ProjectionLagSeconds" in document for document in emitted)


def test_message_not_deleted_comes_back_after_the_visibility_timeout(
    settings: Settings, queues: Queues, consumer_clients: ConsumerClients
) -> None:
    """Every DynamoDB call of the consumer is refused until the first attempt has failed; the
    message, received but not deleted, is received again once its visibility timeout ran out,
    and that attempt catches the budget up."""
    store, budget = persisted_history(settings, HISTORY)
    consumer_clients.dynamodb_faults.rules.append(Rule("*", Fault.REFUSE, limit=None))
    enqueue(settings, budget)
    with capture_logs() as logs, running_consumer(settings):
        eventually(lambda: failing_receives(logs, budget) == [1], "the first attempt failed")
        consumer_clients.dynamodb_faults.enabled = False
        eventually(lambda: queues.counts() == (0, 0), "the message deleted")
    assert consumer_clients.receive_counts == [1, 2]
    assert store.pointer(budget) == store.head(budget)
    assert_matches_fold(store, budget)
    assert queues.dead_letters() == []


def test_budget_failing_every_receive_ends_in_the_dead_letter_queue(
    settings: Settings,
    queues: Queues,
    consumer_clients: ConsumerClients,
    emitted: list[dict[str, Any]],
) -> None:
    """After `maxReceiveCount` failed receives the message (and a malformed one next to it) is
    moved to the dead-letter queue, each failure logged with its receive count, and the
    budget's projection untouched, and every failed catch-up counted in `CatchUpFailures`
    as in a stream batch; the runbook's remedy (`catch-up BUDGET`) then catches it
    up. Like SQS, ElasticMQ moves the message when a receive would exceed the count, so the
    consumer never sees receive count 4. (ElasticMQ's copy in the dead-letter queue keeps
    counting receives; what SQS reports there is not relied on.)"""
    store, budget = persisted_history(settings, HISTORY)
    consumer_clients.dynamodb_faults.rules.append(Rule("*", Fault.REFUSE, limit=None))
    enqueue(settings, budget)
    queues.client.send_message(QueueUrl=queues.url, MessageBody="not json")
    with capture_logs() as logs, running_consumer(settings):
        eventually(lambda: queues.counts() == (0, 0), "both messages redriven", timeout=30)
    consumer_clients.dynamodb_faults.enabled = False  # the cause is fixed
    assert failing_receives(logs, budget) == [1, 2, 3]
    malformed = [line for line in logs if line["event"].startswith("malformed retry queue")]
    assert [line["receive_count"] for line in malformed] == [1, 2, 3]
    assert total(emitted, "CatchUpFailures") == 3  # a malformed message is no catch-up
    assert consumer_clients.steps_at_delete == []  # nothing deleted
    assert store.pointer(budget) is None  # no step committed under the faults
    dead = queues.dead_letters()
    assert len(dead) == 2 and "not json" in dead
    assert [decode(body) for body in dead if body != "not json"] == [budget]
    Projector(store).catch_up(budget)
    assert_matches_fold(store, budget)


def test_failed_delete_brings_the_message_back_and_the_second_catch_up_changes_nothing(
    settings: Settings, queues: Queues, consumer_clients: ConsumerClients
) -> None:
    """The first DeleteMessage is refused (nothing sent, so SQS keeps the message): it comes
    back after the visibility timeout, is caught up again without a single projector step (the
    budget is current), and deleted."""
    store, budget = persisted_history(settings, HISTORY)
    consumer_clients.sqs_faults.rules.append(Rule("DeleteMessage", Fault.REFUSE, limit=1))
    enqueue(settings, budget)
    with capture_logs() as logs, running_consumer(settings):
        eventually(lambda: queues.counts() == (0, 0), "the message deleted at last")
    assert consumer_clients.receive_counts == [1, 2]
    first, second = consumer_clients.steps_at_delete
    assert first > 0 and second == first  # the redelivered catch-up committed nothing
    assert any(line["event"] == "retry queue message not settled" for line in logs)
    assert_matches_fold(store, budget)
    assert store.pointer(budget) == store.head(budget)
    assert queues.dead_letters() == []


def test_the_server_started_is_the_version_the_pom_pins() -> None:
    """`make setup` fetches what tests/elasticmq/pom.xml pins; the fixture runs the jar named
    by `ELASTICMQ_VERSION` (and the docs name that version): the two must agree."""
    pom = ElementTree.parse(POM_DIR / "pom.xml").getroot()
    pinned = pom.find("m:properties/m:elasticmq.version", {"m": MAVEN_NS})
    assert pinned is not None and pinned.text == ELASTICMQ_VERSION
    assert server_jar().is_file()
