"""Fixtures: one real DynamoDB Local server per test session, fresh tables per session, a
fresh budget id per test (budgets never interfere, so tests stay independent and fast), and
moto for tests that need fault injection at high speed. The KCL end-to-end scenarios
(tests/kcl_scenario.py) start with the session and run in the background; their tests
(marker `kcl_e2e`) are collected last, so the rest of the suite overlaps the minutes KCL
takes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests import elasticmq_server
from tests.helpers import fresh_tables
from tests.kcl_scenario import Background
from worker.config import Settings, temporary_env
from worker.engine import aws
from worker.engine.reads import Store
from worker.engine.tables import create_tables
from worker.local import dynamodb_local

# Examples that talk to DynamoDB take milliseconds each and vary with load: no deadline.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def ddb_endpoint() -> Iterator[str]:
    endpoint = os.environ.get("BUDGET_TEST_ENDPOINT")
    if endpoint:  # reuse a running server while iterating locally
        yield endpoint
        return
    server = dynamodb_local.start()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The KCL end-to-end tests last (a stable sort keeps every other order)."""
    items.sort(key=lambda item: item.get_closest_marker("kcl_e2e") is not None)


@pytest.fixture(scope="session", autouse=True)
def kcl_scenarios(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Background | None]:
    """Starts the KCL scenarios at the session's first test when any `kcl_e2e` test was
    collected (none: nothing starts, not even DynamoDB Local)."""
    if not any(item.get_closest_marker("kcl_e2e") for item in request.session.items):
        yield None
        return
    endpoint: str = request.getfixturevalue("ddb_endpoint")
    background = Background(endpoint, Path(tmp_path_factory.mktemp("kcl-scenarios")))
    try:
        yield background
    finally:
        background.stop()


@pytest.fixture(scope="session")
def ddb_settings(ddb_endpoint: str) -> Settings:
    return fresh_tables(ddb_endpoint, "test")


@pytest.fixture
def store(ddb_settings: Settings) -> Store:
    return Store.from_settings(aws.dynamodb(ddb_settings), ddb_settings)


@pytest.fixture
def budget() -> str:
    return f"budget-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def moto_settings() -> Iterator[Settings]:
    from moto import mock_aws

    with (
        temporary_env({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}),
        mock_aws(),
    ):
        settings = Settings(events_table="m-events", projections_table="m-projections")
        create_tables(aws.dynamodb(settings), settings)
        yield settings


@pytest.fixture
def moto_store(moto_settings: Settings) -> Store:
    return Store.from_settings(aws.dynamodb(moto_settings), moto_settings)


@pytest.fixture(scope="session")
def sqs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ElasticMQ (SQS-compatible) server for the session (tests/elasticmq_server.py);
    `BUDGET_TEST_SQS_ENDPOINT` reuses a running one while iterating."""
    endpoint = os.environ.get("BUDGET_TEST_SQS_ENDPOINT")
    if endpoint:
        yield endpoint
        return
    server = elasticmq_server.start(tmp_path_factory.mktemp("elasticmq"))
    try:
        yield server.endpoint_url
    finally:
        server.stop()
