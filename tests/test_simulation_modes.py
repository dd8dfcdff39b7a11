"""The simulation's batch modes: seeds give racing actors different batch sizes, and every
invariant still holds with them (the seeds of test_simulation run these modes too)."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError

from worker.config import Settings
from worker.engine import aws
from worker.proof.faults import Fault, FaultInjector, Rule
from worker.proof.simulation import BATCH_SIZES, SimConfig, Simulation


def test_seeds_race_projectors_with_different_batch_sizes(moto_settings: Settings) -> None:
    mixed = 0
    for seed in range(4):
        simulation = Simulation(
            SimConfig(seed=seed, ops=30, budgets=1),
            lambda: aws.dynamodb(moto_settings),
            moto_settings.events_table,
            moto_settings.projections_table,
        )
        report = simulation.run()
        assert report.violations == [], (seed, simulation.batches, report.violations)
        assert set(simulation.batches.values()) <= set(BATCH_SIZES)
        mixed += len(set(simulation.batches.values())) > 1
    assert mixed >= 2  # most seeds race at least two batch sizes against each other


def _get_head(client, budget: str) -> None:  # type: ignore[no-untyped-def]
    client.get_item(TableName="missing-is-fine", Key={"pk": {"S": budget}, "sk": {"S": "HEAD"}})


def test_an_outage_fails_consecutive_calls_then_ends(moto_settings: Settings) -> None:
    """One firing of a burst rule fails the next `burst` calls: enough to exhaust retries."""
    client = aws.dynamodb(moto_settings)
    FaultInjector([Rule("GetItem", Fault.REFUSE, burst=3)], seed=1).install(client)
    failed = 0
    for _ in range(5):
        try:
            _get_head(client, "b")
        except EndpointConnectionError:
            failed += 1
        except client.exceptions.ResourceNotFoundException:
            pass
    assert failed == 3


def test_a_throttled_budget_fails_only_its_own_calls_while_active(
    moto_settings: Settings,
) -> None:
    client = aws.dynamodb(moto_settings)
    rule = Rule("*", Fault.THROTTLE, limit=None, body_contains='"hot"', active=True)
    FaultInjector([rule], seed=1).install(client)
    with pytest.raises(client.exceptions.ProvisionedThroughputExceededException):
        _get_head(client, "hot")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        _get_head(client, "cold")  # reached the server: no such table
    rule.active = False
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        _get_head(client, "hot")
