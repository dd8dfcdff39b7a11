"""Benchmark: persist, catch-up and validated-read speed against a real DynamoDB Local.

Run with `make bench` (or `python -m benchmarks.projector [--events N]`). Prints the figures and
writes them to benchmarks/results/latest.json. Speed targets live here, not in timed tests.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime

from benchmarks import harness
from benchmarks.harness import percentile
from worker.engine.persist import Persister
from worker.engine.projector import Projector
from worker.engine.validated_read import read_transactions

RESULTS = harness.RESULTS / "latest.json"


def run(events: int) -> dict[str, object]:
    with harness.default_tables() as store:
        budget = f"bench-{uuid.uuid4().hex[:8]}"
        persister = Persister(store)
        latencies = []
        started = time.perf_counter()
        for n in range(events):
            t0 = time.perf_counter()
            kind = "TransactionCreated" if n % 4 == 0 else "TransactionUpdated"
            data = (
                {"date": f"2026-{1 + n % 12:02d}-15", "amount": -n, "account": "a", "category": "c"}
                if kind == "TransactionCreated"
                else {"amount": n}
            )
            persister.persist(budget, kind, f"t{n - n % 4}", data)
            latencies.append(time.perf_counter() - t0)
        persist_s = time.perf_counter() - started

        started = time.perf_counter()
        result = Projector(store).catch_up(budget)
        catch_up_s = time.perf_counter() - started
        assert result.pointer == result.head

        reads = []
        for _ in range(20):
            t0 = time.perf_counter()
            view = read_transactions(store, budget, projector=None)
            reads.append(time.perf_counter() - t0)

        race_budget = f"race-{uuid.uuid4().hex[:8]}"
        for n in range(events // 2):
            persister.persist(
                race_budget,
                "TransactionCreated",
                f"r{n}",
                {"date": "2026-01-01", "amount": n, "account": "a", "category": "c"},
            )
        started = time.perf_counter()
        threads = [
            threading.Thread(target=Projector(store).catch_up, args=(race_budget,))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        race_s = time.perf_counter() - started
        return {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {platform.python_version()}",
            "server": "DynamoDB Local 3.3.0 (in memory, loopback)",
            "events": events,
            "persist_per_s": round(events / persist_s, 1),
            "persist_p50_ms": round(statistics.median(latencies) * 1000, 2),
            "persist_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "catch_up_steps_per_s": round(events / catch_up_s, 1),
            "catch_up_ms_per_step": round(catch_up_s / events * 1000, 2),
            "validated_read_transactions": len(view.transactions),
            "validated_read_p50_ms": round(statistics.median(reads) * 1000, 2),
            "racing_projectors": 3,
            "racing_events": events // 2,
            "racing_catch_up_s": round(race_s, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    harness.quiet()
    figures = run(args.events)
    harness.write_results(RESULTS, figures)
    for name, value in figures.items():
        print(f"{name:32} {value}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
