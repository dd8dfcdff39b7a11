"""Benchmark: projection throughput against DynamoDB Local, each figure as a ratio to the raw
limit measured in the same run (a bare loop of 2-item conditional `TransactWriteItems`, one
thread), because this machine is shared and absolute figures are noisy.

Run with `make bench` (or `python -m benchmarks.throughput`). Prints the figures, writes
benchmarks/results/throughput.json and the plot benchmarks/results/backlog_by_batch.png.
Speed targets live here and in BENCHMARKS.md, never in timed tests.

What it measures:
- raw: the bare 2-item conditional transaction loop (calls/s);
- backlog: one budget's backlog caught up by `Projector(batch=N)` (events/s), by batch size;
- stream drain: a backlog of budgets x events delivered as stream records (1,000 per batch, as
  the local driver reads them) to the record processor in this process, by concurrency, with
  the production handler (catch-up, snapshot rebuild deferred to the background thread, which
  is drained at the end: both times are reported) and, at the highest concurrency, with the
  rebuild inline (BUDGET_SNAPSHOT_DELAY=0) and with no rebuild at all (what the rebuild costs
  on the hot path). benchmarks/end_to_end.py drains through `run --driver local` itself;
- persist p50/p99 and validated read p50 (ms); the benchmark process's peak RSS (MB).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.harness import RESULTS, base_id, history, percentile, raw_loop, seed
from worker.config import Settings
from worker.engine.catch_ups import keep
from worker.engine.persist import Persister
from worker.engine.projector import CatchUpResult, Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder
from worker.engine.validated_read import read_transactions
from worker.model import layout
from worker.model.events import Event
from worker.proof.kcl_inputs import Batch, Record, RecordingCheckpointer
from worker.stream.deferred_rebuilds import DeferredRebuilds
from worker.stream.record_processor import BudgetRecordProcessor
from worker.stream.records import ADAPTER, encode, stream_record
from worker.stream.runtime import after_catch_up, stream_catch_up_all


def backlog(store: Store, batch: int, events: int) -> float:
    budget = f"backlog-{batch}-{uuid.uuid4().hex[:6]}"
    seed(store, history(budget, events, base_id()))
    started = time.perf_counter()
    result = Projector(store, batch=batch).catch_up(budget)
    elapsed = time.perf_counter() - started
    assert result.pointer == result.head and result.applied == events
    return events / elapsed


def _record(event: Event, sequence: int) -> Record:
    data = encode(
        stream_record(event.budget, layout.event_sk(event.event_id), sequence=sequence), ADAPTER
    )
    return Record(data, str(sequence))


def stream_drain(
    store: Store,
    budgets: int,
    per_budget: int,
    concurrency: int,
    then: Callable[[CatchUpResult], CatchUpResult],
    deferred: DeferredRebuilds | None = None,
) -> tuple[float, float]:
    """Events/s of draining a stream backlog: records in commit order, writers interleaved
    across budgets, delivered 1,000 per batch; checkpoint after every batch. Also events/s
    counted until `deferred` (if any) has rebuilt every snapshot."""
    tag = uuid.uuid4().hex[:6]
    base = base_id()
    histories = [
        history(f"drain-{tag}-{b}", per_budget, base + b * per_budget) for b in range(budgets)
    ]
    for events in histories:
        seed(store, events)
    records = [
        _record(events[n], 1 + n * budgets + b)
        for n in range(per_budget)
        for b, events in enumerate(histories)
    ]
    processor = BudgetRecordProcessor(
        catch_up_all=stream_catch_up_all(store, then, workers=concurrency)
    )
    checkpointer = RecordingCheckpointer()
    started = time.perf_counter()
    for start in range(0, len(records), 1000):
        processor.process_records(Batch(records[start : start + 1000], checkpointer))
    elapsed = time.perf_counter() - started
    if deferred is not None:
        deferred.close(within=float("inf"))  # every snapshot, however long it takes
    with_snapshots = time.perf_counter() - started
    assert not processor.pending and len(checkpointer.taken) == -(-len(records) // 1000)
    for events in histories[:: max(1, budgets // 10)]:
        assert store.pointer(events[0].budget) == events[-1].event_id
        assert store.dirty_months(events[0].budget) == [] or deferred is None
    total = budgets * per_budget
    return total / elapsed, total / with_snapshots


def deferred_handler(store: Store) -> tuple[Callable[[CatchUpResult], Any], DeferredRebuilds]:
    """The stream worker's production path (worker.stream.runtime.record_processor): after a
    budget's catch-up, its snapshot rebuild is deferred to the background thread."""
    deferred = DeferredRebuilds(Rebuilder(store).rebuild, delay=Settings.snapshot_delay)
    deferred.start()
    return after_catch_up(Rebuilder(store), deferred), deferred


def persist_and_read(store: Store, count: int) -> dict[str, float]:
    budget = f"persist-{uuid.uuid4().hex[:6]}"
    persister = Persister(store)
    latencies = []
    for event in history(budget, count, base_id()):
        t0 = time.perf_counter()
        persister.persist(budget, str(event.type), event.transaction_id, event.data)
        latencies.append(time.perf_counter() - t0)
    Projector(store).catch_up(budget)
    reads = []
    for _ in range(30):
        t0 = time.perf_counter()
        read_transactions(store, budget, projector=None)
        reads.append(time.perf_counter() - t0)
    return {
        "persist_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "persist_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "validated_read_p50_ms": round(statistics.median(reads) * 1000, 2),
    }


def plot(figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = figures["backlog"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["batch"] for r in rows], [r["ratio"] for r in rows], marker="o")
    ax.axhline(1.0, color="grey", linestyle=":", label="raw loop (1x)")
    ax.axhline(5.0, color="green", linestyle="--", label="target (5x)")
    ax.set_xscale("log")
    ax.set_xlabel("events per step (--batch)")
    ax.set_ylabel("backlog events/s / raw loop calls/s")
    ax.set_title(f"One budget's backlog on DynamoDB Local ({figures['when'][:10]})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="backlog of one budget")
    parser.add_argument(
        "--single-events", type=int, default=1_000, help="backlog for --batch 1 (slow)"
    )
    parser.add_argument("--batches", default="1,5,10,25,50,100")
    parser.add_argument("--budgets", type=int, default=300)
    parser.add_argument("--per-budget", type=int, default=10)
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--raw-seconds", type=float, default=10.0)
    args = parser.parse_args()
    harness.quiet()
    with harness.default_tables() as store:
        raw_loop(store, 2.0, 200)  # warm the server's JIT before anything is measured

        def raw() -> float:
            return raw_loop(store, args.raw_seconds, 5_000)

        raws = [raw()]
        rows = []
        for batch in [int(b) for b in args.batches.split(",")]:
            events = args.single_events if batch == 1 else args.events
            rate = backlog(store, batch, events)
            rows.append({"batch": batch, "events": events, "events_per_s": round(rate, 1)})
            print(f"backlog batch={batch:<4} {events} events  {rate:8.1f} events/s", flush=True)
        raws.append(raw())
        drains: list[dict[str, Any]] = []
        top = max(int(c) for c in args.concurrency.split(","))
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            then, deferred = deferred_handler(store)
            rate, with_snapshots = stream_drain(
                store, args.budgets, args.per_budget, concurrency, then, deferred
            )
            drains.append(
                {
                    "concurrency": concurrency,
                    "rebuild": "deferred",
                    "events_per_s": rate,
                    "events_per_s_until_snapshots_rebuilt": with_snapshots,
                }
            )
            print(f"stream drain concurrency={concurrency:<3} {rate:8.1f} events/s", flush=True)
        inline = after_catch_up(Rebuilder(store), None)
        for name, then in (("inline", inline), ("none", keep)):
            rate, _ = stream_drain(store, args.budgets, args.per_budget, top, then)
            drains.append({"concurrency": top, "rebuild": name, "events_per_s": rate})
            print(f"stream drain concurrency={top:<3} rebuild {name} {rate:8.1f} events/s")
        raws.append(raw())
        latency = persist_and_read(store, 200)
    raw_rate = statistics.median(raws)
    for row in rows:
        row["ratio"] = round(row["events_per_s"] / raw_rate, 2)
    for drain in drains:
        for key in ("events_per_s", "events_per_s_until_snapshots_rebuilt"):
            if key in drain:
                drain[key] = round(drain[key], 1)
        drain["ratio"] = round(drain["events_per_s"] / raw_rate, 2)
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()} Python {platform.python_version()}"
        f", {__import__('os').cpu_count()} cores (shared)",
        "server": "DynamoDB Local (in memory, loopback, same machine)",
        "command": "make bench",
        "raw_loop_calls_per_s": [round(r, 1) for r in raws],
        "raw_loop_median": round(raw_rate, 1),
        "backlog": rows,
        "stream_drain": {
            "budgets": args.budgets,
            "events_per_budget": args.per_budget,
            "runs": drains,
        },
        **latency,
        "bench_process_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
    }
    harness.write_results(RESULTS / "throughput.json", figures)
    plot(figures, RESULTS / "backlog_by_batch.png")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
