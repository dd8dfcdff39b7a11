"""The retry queue on moto's SQS: hand-off, consumption, and what is never deleted."""

from __future__ import annotations

import threading

import boto3
import pytest

from worker.stream.retry_queue import EnqueueFailed, SqsRetryQueue, consume, decode, handle_message


@pytest.fixture
def queue(moto_settings):
    client = boto3.client("sqs", region_name="us-east-1")
    dlq = client.create_queue(QueueName="budget-retry-dlq")["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = client.create_queue(
        QueueName="budget-retry",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "3"}}',
        },
    )["QueueUrl"]
    return SqsRetryQueue(client, url), dlq


def test_enqueued_budget_is_caught_up_then_deleted(queue) -> None:
    q, _ = queue
    q.enqueue("b1", "throttled")
    caught: list[str] = []
    [message] = q.receive(wait_seconds=0)
    assert message.budget == "b1"
    assert handle_message(q, caught.append, message)
    assert caught == ["b1"]
    assert q.receive(wait_seconds=0) == []


def test_failing_budget_stays_and_ends_in_the_dead_letter_queue(queue) -> None:
    q, dlq = queue
    q.enqueue("b1", "down")

    def failing(budget: str) -> None:
        raise RuntimeError("still down")

    for _ in range(3):
        for message in q.receive(wait_seconds=0):
            assert not handle_message(q, failing, message)
    assert q.receive(wait_seconds=0) == []  # redriven after maxReceiveCount
    moved = q.client.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert decode(moved[0]["Body"]) == "b1"


@pytest.mark.parametrize(
    "body", ["not json", "[1]", '{"budgets": "b"}', '{"budget": ""}', '{"budget": 5}']
)
def test_malformed_messages_are_never_deleted(queue, body: str) -> None:
    q, _ = queue
    q.client.send_message(QueueUrl=q.url, MessageBody=body)
    [message] = q.receive(wait_seconds=0)
    assert message.budget is None and message.problem
    assert not handle_message(q, lambda b: None, message)


def test_enqueue_failure_is_reported() -> None:
    class Broken:
        def send_message(self, **_):
            raise RuntimeError("no network")

    with pytest.raises(EnqueueFailed, match="b1"):
        SqsRetryQueue(Broken(), "url").enqueue("b1", "x")  # type: ignore[arg-type]


def test_consumer_loop_drains_until_stopped(queue) -> None:
    q, _ = queue
    for b in ("b1", "b2", "b3"):
        q.enqueue(b, "retry")
    stop = threading.Event()
    seen: list[str] = []

    def catch_up(budget: str) -> None:
        seen.append(budget)
        if len(set(seen)) == 3:
            stop.set()

    consume(q, catch_up, stop, wait_seconds=0)
    assert sorted(set(seen)) == ["b1", "b2", "b3"]


def test_consumer_survives_a_failed_delete(queue) -> None:
    q, _ = queue
    q.enqueue("b1", "retry")
    original = q.client.delete_message
    calls: list[int] = []

    def flaky_delete(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("network blip")
        return original(**kwargs)

    q.client.delete_message = flaky_delete
    stop = threading.Event()
    seen: list[str] = []

    def catch_up(budget: str) -> None:
        seen.append(budget)
        if len(seen) == 2:  # redelivered after the failed delete, and handled again
            stop.set()

    consume(q, catch_up, stop, wait_seconds=0)
    assert seen == ["b1", "b1"] and len(calls) == 2
