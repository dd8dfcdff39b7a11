"""What a simulation run hands back: one `SeedResult` per finished seed, summed into a
`RunSummary` per backend (the `simulate --json` document, and the report's input). Apart from
the runner so the report can read a run without the process pool and backends behind it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from worker.proof.simulation import SimReport


@dataclass(slots=True)
class SeedResult:
    """One finished seed, as a worker process hands it back."""

    report: SimReport
    seconds: float
    peak_rss_mb: float  # of the process that ran it, so far


@dataclass(slots=True)
class RunSummary:
    backend: str
    seeds: list[int] = field(default_factory=list)
    ops: int = 0
    jobs: int = 1
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    failures: list[SimReport] = field(default_factory=list)
    reports: dict[int, SimReport] = field(default_factory=dict)
    seconds: float = 0.0
    seed_seconds: float = 0.0  # summed over seeds (CPU-bound: about jobs x wall time)
    peak_rss_mb: float = 0.0  # the largest of the main and every worker process
    # Peak RSS so far when the 1st, 10th, 100th, 1,000th ... seed finished: flat if a long run
    # holds the memory of one seed.
    peak_rss_mb_after: dict[int, float] = field(default_factory=dict)
    server_peak_rss_mb: float | None = None  # DynamoDB Local's, for --backend local
    interrupted: bool = False
    time_budget_reached: bool = False

    def add(self, result: SeedResult) -> None:
        report = result.report
        self.seeds.append(report.seed)
        self.reports[report.seed] = report
        self.operations.update(report.operations)
        self.faults.update(report.faults)
        self.outcomes.update(report.outcomes)
        self.checks.update(report.checks)
        self.paths.update(report.paths)
        self.seed_seconds += result.seconds
        self.peak_rss_mb = max(self.peak_rss_mb, result.peak_rss_mb)
        done = len(self.seeds)
        if done == 10 ** (len(str(done)) - 1):
            self.peak_rss_mb_after[done] = round(self.peak_rss_mb, 1)
        if report.violations:
            self.failures.append(report)

    def reproduce(self, seed: int) -> str:
        return reproduce_command(self.backend, seed, self.ops)

    def faults_by_kind(self) -> Counter[str]:
        kinds: Counter[str] = Counter()
        for key, count in self.faults.items():  # "Operation:kind" -> kind
            kinds[key.split(":", 1)[1]] += count
        return kinds

    def as_json(self) -> dict[str, Any]:
        done = len(self.seeds)
        return {
            "backend": self.backend,
            "seeds": done,
            "first_seed": min(self.seeds, default=None),
            "last_seed": max(self.seeds, default=None),
            "ops_per_seed": self.ops,
            "jobs": self.jobs,
            "seconds": round(self.seconds, 1),
            "seconds_per_seed": round(self.seed_seconds / done, 2) if done else None,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_rss_mb_after_seeds": {str(n): mb for n, mb in self.peak_rss_mb_after.items()},
            "server_peak_rss_mb": self.server_peak_rss_mb,
            "interrupted": self.interrupted,
            "time_budget_reached": self.time_budget_reached,
            "operations": dict(self.operations),
            "faults": dict(self.faults),
            "faults_by_kind": dict(self.faults_by_kind()),
            "checks": dict(self.checks),
            "paths": dict(self.paths),
            "violations": [
                {
                    "seed": r.seed,
                    "violations": r.violations,
                    "reproduce": self.reproduce(r.seed),
                    "at_operation": r.at_operation,
                }
                for r in self.failures
            ],
        }


def reproduce_command(backend: str, seed: int, ops: int) -> str:
    return (
        f"budget-worker simulate --backend {backend} --start {seed} --seeds 1 --ops {ops} --jobs 1"
    )
