"""Benchmark: the stream worker end to end, as a user runs it (`budget-worker run --driver
local`: the local driver reads DynamoDB Local's stream and feeds `kcl-processor` children over
the MultiLang protocol), each rate as a ratio to the raw loop measured in the same run on the
same server (a bare loop of 2-item conditional `TransactWriteItems`, one thread).

Run with `make bench` (or `python -m benchmarks.end_to_end`). Prints the figures and writes
benchmarks/results/end_to_end.json. No target is asserted here or in tests.

What it measures:
- drain: a stream backlog of budgets x events, stored before the worker starts (events and
  heads written directly, so the stream holds exactly what persist would leave); the time from
  starting `run --driver local` until every budget's pointer has reached its head, by
  `BUDGET_CONCURRENCY`, with snapshot rebuilds deferred (the default) and inline
  (`BUDGET_SNAPSHOT_DELAY=0`); also until no dirty marker is left, and the same rate counted
  from the first event applied (the driver's and children's start-up excluded);
- lag: with the worker running, one writer persists events at a steady rate over many budgets
  through the persist path; for each event, the time from `persist` returning until the
  budget's pointer has reached it, i.e. until `transactions --no-catch-up` serves it (checked:
  at the end every budget is read that way and must hold every event); p50/p95/p99/max;
- RSS: `run` plus its `kcl-processor` children, sampled every 0.5 s during the lag phase.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.throughput import RESULTS, base_id, history, percentile, raw_loop, seed
from worker import logs
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.engine.validated_read import read_transactions
from worker.local import dynamodb_local
from worker.local.scratch import scratch_tables

# How often the lag watcher reads the pointers it waits for: the resolution of the lag figures.
POLL_SECONDS = 0.02


def fresh(endpoint: str, tag: str) -> tuple[Settings, Store]:
    settings = scratch_tables(endpoint, tag)
    return settings, Store.from_settings(aws.dynamodb(settings), settings)


@dataclass
class Worker:
    """`budget-worker run --driver local` in a subprocess, its output in a log file."""

    settings: Settings
    concurrency: int
    snapshot_delay: float
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": self.settings.endpoint_url or "",
            "BUDGET_EVENTS_TABLE": self.settings.events_table,
            "BUDGET_PROJECTIONS_TABLE": self.settings.projections_table,
            "BUDGET_LEASE_TABLE": self.settings.lease_table,
            "BUDGET_CONCURRENCY": str(self.concurrency),
            "BUDGET_SNAPSHOT_DELAY": str(self.snapshot_delay),
            "BUDGET_LOG_LEVEL": "warning",
            "BUDGET_METRICS": "off",
        }
        env.pop("BUDGET_RETRY_QUEUE_URL", None)
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run", "--driver", "local"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def pids(self) -> list[int]:
        assert self.process is not None
        pids = [self.process.pid]
        for task in os.listdir(f"/proc/{self.process.pid}/task"):
            with open(f"/proc/{self.process.pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        return pids

    def rss_mb(self) -> dict[int, float]:
        sizes = {}
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            sizes[pid] = int(line.split()[1]) / 1024
            except FileNotFoundError:
                continue
        return sizes

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: children finish, deferred rebuilds drain
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def drain(
    endpoint: str, budgets: int, per_budget: int, concurrency: int, delay: float, logs_dir: Path
) -> dict[str, Any]:
    settings, store = fresh(endpoint, "drain")
    base = base_id()
    names = [f"drain-{b:04d}" for b in range(budgets)]
    heads = {}
    for b, name in enumerate(names):
        events = history(name, per_budget, base + b * per_budget)
        seed(store, events)
        heads[name] = events[-1].event_id
    worker = Worker(settings, concurrency, delay, logs_dir / f"drain-c{concurrency}-d{delay}.log")
    started = time.perf_counter()
    worker.start()
    first: float | None = None
    left = set(names)
    while left:
        now = store.pointers(sorted(left))
        if first is None and any(p is not None for p in now.values()):
            first = time.perf_counter()
        left = {b for b in left if now[b] != heads[b]}
        if worker.process is not None and worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited; see {worker.log_path}")
        if left:
            time.sleep(0.05)
    done = time.perf_counter()
    dirty = set(names)
    while dirty:  # snapshots: every marker cleared
        dirty = {b for b in dirty if store.dirty_months(b)}
        if dirty:
            time.sleep(0.1)
    clean = time.perf_counter()
    worker.stop()
    total = budgets * per_budget
    assert first is not None
    return {
        "concurrency": concurrency,
        "snapshot_delay": delay,
        "seconds_to_projected": round(done - started, 2),
        "seconds_to_snapshots_clean": round(clean - started, 2),
        "events_per_s": round(total / (done - started), 1),
        "events_per_s_after_first_applied": round(total / (done - first), 1),
    }


@dataclass
class LagRun:
    latencies: list[float] = field(default_factory=list)
    persist_ms: list[float] = field(default_factory=list)
    rss: list[dict[int, float]] = field(default_factory=list)


def lag(
    endpoint: str,
    rate: float,
    budgets: int,
    seconds: float,
    concurrency: int,
    logs_dir: Path,
    snapshot_delay: float = Settings.snapshot_delay,
    months: int = 12,
) -> dict[str, Any]:
    settings, store = fresh(endpoint, "lag")
    names = [f"lag-{b:03d}" for b in range(budgets)]
    worker = Worker(settings, concurrency, snapshot_delay, logs_dir / f"lag-{snapshot_delay}.log")
    worker.start()
    persister = Persister(store)
    # Warm up: one event per budget, and wait until the worker has applied them all (the
    # driver's and children's start-up is not lag).
    last: dict[str, str] = {}
    for name in names:
        warm = persister.persist(name, "TransactionCreated", "t0", _created(0, months))
        last[name] = warm.event_id
    while any(p != last[b] for b, p in store.pointers(names).items()):
        time.sleep(0.1)

    run = LagRun()
    waiting: dict[str, list[tuple[str, float]]] = {}  # budget -> [(event id, persisted at)]
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()

    def watch() -> None:
        while writing.is_set() or waiting:
            with lock:
                budgets_waiting = sorted(b for b, w in waiting.items() if w)
            if not budgets_waiting:
                time.sleep(POLL_SECONDS)
                continue
            seen = store.pointers(budgets_waiting)
            now = time.perf_counter()
            with lock:
                for budget, pointer in seen.items():
                    pending = waiting.get(budget, [])
                    while pending and pointer is not None and pointer >= pending[0][0]:
                        run.latencies.append(now - pending.pop(0)[1])
                    if not pending:
                        waiting.pop(budget, None)
            time.sleep(POLL_SECONDS)  # the poll's own load must not be what is measured

    def sample() -> None:
        while writing.is_set():
            run.rss.append(worker.rss_mb())
            time.sleep(0.5)

    watchers = [threading.Thread(target=watch), threading.Thread(target=sample)]
    for thread in watchers:
        thread.start()
    total = int(rate * seconds)
    began = time.perf_counter()
    for n in range(total):
        slot = began + n / rate
        pause = slot - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        name = names[n % budgets]
        t0 = time.perf_counter()
        kind, tid, data = _event(n // budgets, months)
        event_id = persister.persist(name, kind, tid, data).event_id
        t1 = time.perf_counter()
        run.persist_ms.append((t1 - t0) * 1000)
        with lock:
            waiting.setdefault(name, []).append((event_id, t1))
        last[name] = event_id
    achieved = total / (time.perf_counter() - began)
    writing.clear()
    for thread in watchers:
        thread.join(timeout=120)
    # What the reader sees: every budget read without a catch-up holds every event.
    for name in names:
        view = read_transactions(store, name, projector=None)
        assert view.as_of_event == last[name], name
    worker.stop()
    per_process = [sum(s.values()) for s in run.rss if s]
    steady = per_process[len(per_process) // 4 :]  # after the first quarter
    ms = [x * 1000 for x in run.latencies]
    return {
        "snapshot_delay": snapshot_delay,
        "months_written": months,
        "rate_asked": rate,
        "rate_achieved": round(achieved, 1),
        "budgets": budgets,
        "seconds": seconds,
        "events": len(ms),
        "lag_p50_ms": round(statistics.median(ms), 1),
        "lag_p95_ms": round(percentile(ms, 0.95), 1),
        "lag_p99_ms": round(percentile(ms, 0.99), 1),
        "lag_max_ms": round(max(ms), 1),
        "persist_p50_ms": round(statistics.median(run.persist_ms), 2),
        "persist_p99_ms": round(percentile(run.persist_ms, 0.99), 2),
        "worker_rss_mb_steady_max": round(max(steady), 1),
        "worker_rss_mb_steady_median": round(statistics.median(steady), 1),
        "worker_processes": max(len(s) for s in run.rss),
    }


def _created(n: int, months: int) -> dict[str, Any]:
    return {"date": f"2026-{1 + n % months:02d}-15", "amount": -n, "account": "a", "category": "c"}


def _event(k: int, months: int) -> tuple[str, str, dict[str, Any]]:
    """A budget's k-th event after the warm-up: each transaction created, then updated three
    times (every other update changes its date), dates spread over `months` months: 1 is an
    app whose users record this month's spending; 12 makes every snapshot rebuild rewrite a
    year (each change dirties its month and every later one)."""
    tid = f"t{1 + k // 4}"
    if k % 4 == 0:
        return "TransactionCreated", tid, _created(k, months)
    if k % 2:
        return "TransactionUpdated", tid, {"amount": k}
    return "TransactionUpdated", tid, {"date": f"2026-{1 + (k + 1) % months:02d}-10"}


@contextmanager
def server_and_raw_loop(seconds: float) -> Iterator[tuple[str, list[float]]]:
    """A fresh DynamoDB Local; the raw loop measured on it before and after the block."""
    server = dynamodb_local.start()
    try:
        _, store = fresh(server.endpoint_url, "raw")
        raw_loop(store, 2.0, 200)  # warm the server's JIT
        raws = [raw_loop(store, seconds, 5_000)]
        yield server.endpoint_url, raws
        raws.append(raw_loop(store, seconds, 5_000))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, default=300)
    parser.add_argument("--per-budget", type=int, default=10)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--lag-rate", type=float, default=50.0)
    parser.add_argument("--lag-budgets", type=int, default=100)
    parser.add_argument("--lag-seconds", type=float, default=60.0)
    parser.add_argument("--raw-seconds", type=float, default=10.0)
    args = parser.parse_args()
    logs.configure("error")
    logs_dir = Path("/tmp") / f"budget-bench-{uuid.uuid4().hex[:6]}"
    logs_dir.mkdir()
    # Each phase on a server of its own: after the drains, a DynamoDB Local holding their
    # tables and streams answered the lag phase's writer 3-4x slower than a fresh one.
    with server_and_raw_loop(args.raw_seconds) as (endpoint, raws):
        drains = []
        runs = [(int(c), Settings.snapshot_delay) for c in args.concurrency.split(",")]
        runs.append((runs[-1][0], 0.0))
        for concurrency, delay in runs:
            row = drain(endpoint, args.budgets, args.per_budget, concurrency, delay, logs_dir)
            drains.append(row)
            print(f"drain {row}", flush=True)
    lags = []
    for months in (1, 12):
        with server_and_raw_loop(args.raw_seconds) as (endpoint, lag_raws):
            latency = lag(
                endpoint,
                args.lag_rate,
                args.lag_budgets,
                args.lag_seconds,
                Settings.concurrency,
                logs_dir,
                months=months,
            )
            print(f"lag {latency}", flush=True)
        latency["raw_loop_calls_per_s_same_server"] = [round(r, 1) for r in lag_raws]
        lags.append(latency)
    raw_rate = statistics.median(raws)
    for row in drains:
        row["ratio"] = round(row["events_per_s"] / raw_rate, 2)
        row["ratio_after_first_applied"] = round(
            row["events_per_s_after_first_applied"] / raw_rate, 2
        )
    figures = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "make bench (python -m benchmarks.end_to_end)",
        "server": "DynamoDB Local (in memory, loopback, same machine)",
        "raw_loop_calls_per_s": [round(r, 1) for r in raws],
        "raw_loop_median": round(raw_rate, 1),
        "drain": {"budgets": args.budgets, "events_per_budget": args.per_budget, "runs": drains},
        "lag": lags,
        "worker_logs": str(logs_dir),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "end_to_end.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
