"""Settings read from the environment (CLI contract: standard AWS variables plus BUDGET_*)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from worker.errors import InvalidInput


@dataclass(frozen=True)
class Settings:
    """Where the tables and endpoints are and how patient a DynamoDB call is.

    One object of settings with defaults, passed to `BudgetWorker` (or built by `from_env`
    from `AWS_REGION`, `AWS_ENDPOINT_URL*` and `BUDGET_*`), so tests and apps can configure
    the library without touching the process environment.
    """

    events_table: str = "budget-events"
    projections_table: str = "budget-projections"
    lease_table: str = "budget-worker"
    retry_queue_url: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None
    streams_endpoint_url: str | None = None
    # Give up on one DynamoDB call after this many seconds (connect + read), so an ambiguous
    # call surfaces quickly instead of hanging a catch-up.
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    # Attempts of botocore's standard retry mode (throttling, 5xx, transient network errors).
    sdk_max_attempts: int = 5
    # Budgets handled at once (the sweep; BUDGET_CONCURRENCY).
    concurrency: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        generic = env.get("AWS_ENDPOINT_URL") or None
        ddb = env.get("AWS_ENDPOINT_URL_DYNAMODB") or generic
        return cls(
            events_table=env.get("BUDGET_EVENTS_TABLE") or cls.events_table,
            projections_table=env.get("BUDGET_PROJECTIONS_TABLE") or cls.projections_table,
            lease_table=env.get("BUDGET_LEASE_TABLE") or cls.lease_table,
            retry_queue_url=env.get("BUDGET_RETRY_QUEUE_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or cls.region,
            endpoint_url=ddb,
            streams_endpoint_url=env.get("AWS_ENDPOINT_URL_DYNAMODB_STREAMS") or ddb,
            concurrency=_positive(env, "BUDGET_CONCURRENCY", cls.concurrency),
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise InvalidInput(f"{name} must be at least 1, not {value}")
    return value


@contextmanager
def temporary_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them exactly."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
