"""The simulation's batch modes: seeds give racing actors different batch sizes, and every
invariant still holds with them (the seeds of test_simulation run these modes too)."""

from __future__ import annotations

from worker.config import Settings
from worker.engine import aws
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
