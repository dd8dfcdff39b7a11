"""The benchmarks' latency proxy forwards DynamoDB calls unchanged (botocore checks each
answer's CRC32, so a changed byte would fail the call), reads the operation from
`X-Amz-Target`, draws latencies with the asked percentiles, and serves loopback only.
No time is asserted: the draws are seeded and counted, not clocked."""

from __future__ import annotations

import dataclasses
import random

import pytest

from benchmarks.latency_proxy import (
    DEFAULTS,
    Latency,
    Proxy,
    counts,
    operation_of,
    serve,
    url_of,
)
from tests.helpers import CREATE_T, assert_matches_fold, new_budget
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.projector import Projector
from worker.engine.reads import Store


def test_calls_through_the_proxy_behave_as_direct_ones(ddb_settings: Settings) -> None:
    proxy = serve(ddb_settings.endpoint_url or "", seed=1)
    try:
        settings = dataclasses.replace(ddb_settings, endpoint_url=url_of(proxy))
        store = Store.from_settings(aws.dynamodb(settings), settings)
        budget = new_budget()
        Persister(store).persist(budget, "TransactionCreated", "t1", CREATE_T)
        Persister(store).persist(budget, "TransactionDeleted", "t9", {})  # rejected (I6)
        result = Projector(store).catch_up(budget)
        assert (result.applied, result.rejected) == (1, 1)
        assert_matches_fold(store, budget)
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_operation_is_read_from_the_target_header() -> None:
    assert operation_of("DynamoDB_20120810.TransactWriteItems") == "TransactWriteItems"
    assert operation_of("DynamoDBStreams_20120810.GetRecords") == "GetRecords"
    assert operation_of(None) == ""
    assert DEFAULTS["TransactWriteItems"].p50_ms > 3 * DEFAULTS["GetItem"].p50_ms


@pytest.mark.parametrize("latency", [Latency(7.6, 16.0), Latency(25.0, 93.0)])
def test_draws_have_the_asked_median_and_99th_percentile(latency: Latency) -> None:
    rng = random.Random(7)
    draws = sorted(latency.draw(rng) for _ in range(20_000))
    assert draws[10_000] == pytest.approx(latency.p50_ms, rel=0.05)
    assert draws[19_800] == pytest.approx(latency.p99_ms, rel=0.1)


def test_refuses_an_upstream_off_this_machine() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Proxy("http://dynamodb.eu-west-1.amazonaws.com", DEFAULTS, None)


def test_calls_are_counted_by_operation_and_table(ddb_settings: Settings) -> None:
    proxy = serve(ddb_settings.endpoint_url or "", seed=2)
    try:
        settings = dataclasses.replace(ddb_settings, endpoint_url=url_of(proxy))
        store = Store.from_settings(aws.dynamodb(settings), settings)
        store.positions(["a", "b"])
        store.head("a")
        found = counts(url_of(proxy), reset=True)
        tables = ",".join(sorted([settings.events_table, settings.projections_table]))
        assert found == {f"BatchGetItem {tables}": 1, f"GetItem {settings.events_table}": 1}
        assert counts(url_of(proxy)) == {}
    finally:
        proxy.shutdown()
        proxy.server_close()
