"""Benchmark: the stream worker end to end, as a user runs it (`budget-worker run --driver
local`: the local driver reads DynamoDB Local's stream and feeds `kcl-processor` children over
the MultiLang protocol), each rate as a ratio to the raw loop measured in the same run on the
same server (a bare loop of 2-item conditional `TransactWriteItems`, one thread).

Run with `make bench` (or `python -m benchmarks.end_to_end`). Prints the figures and writes
benchmarks/results/end_to_end.json. No target is asserted here or in tests.

Every phase runs twice: on DynamoDB Local directly, and through `benchmarks/latency_proxy.py`
("as on AWS": each call held for a latency drawn per operation), which also counts the
worker's calls by operation and table, so calls per budget are counted, not estimated.

What it measures:
- drain: a stream backlog of budgets x events (300 x 10 and 3,000 x 1 by default), stored
  before the worker starts (events and heads written directly, so the stream holds exactly
  what persist would leave); the time from starting `run --driver local` until every budget's
  pointer has reached its head, by `BUDGET_CONCURRENCY`, snapshot rebuilds deferred (the
  default); also counted from the first event applied (the driver's and child's start-up
  excluded); through the proxy, as a share of the same drain without it;
- replay: after the 3,000-budget drain at the default concurrency, `replay --trim-horizon`
  and `run` again over a stream whose budgets are all current, until every checkpoint is back
  at the end;
- lag: with the worker running, one writer persists events at a steady rate over many budgets
  through the persist path (directly: only the worker goes through the proxy); for each
  event, the time from `persist` returning until the budget's pointer has reached it, i.e.
  until `transactions --no-catch-up` serves it (checked: at the end every budget is read that
  way and must hold every event); p50/p95/p99/max;
- RSS: `run` plus its `kcl-processor` children, sampled every 0.5 s during the lag phase.

Over the ~450-line guideline on purpose: one cohesive concern, the end-to-end benchmark's
phases (drain, replay, lag) sharing one worker subprocess wrapper and one result document;
what other benchmarks share is in benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.harness import RESULTS, base_id, fresh, history, percentile, raw_loop, seed
from benchmarks.latency_proxy import counts, proxied
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.engine.validated_read import read_transactions
from worker.stream.leases import TRIM_HORIZON, LeaseTable

# How often the lag watcher reads the pointers it waits for: the resolution of the lag figures.
POLL_SECONDS = 0.02
# Writing at the lag's rate before it is measured (`lag`'s docstring).
WARMUP_SECONDS = 20.0


@dataclass
class Worker:
    """`budget-worker run --driver local` in a subprocess, its output in a log file."""

    settings: Settings
    concurrency: int
    snapshot_delay: float
    log_path: Path
    endpoint: str | None = None  # the latency proxy's URL; the server's by default
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": self.endpoint or self.settings.endpoint_url or "",
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


def seeded(
    endpoint: str, budgets: int, per_budget: int
) -> tuple[Settings, Store, list[str], dict[str, str]]:
    """Fresh tables holding a stream backlog of budgets x events (events and heads stored
    directly, in commit order across budgets: the stream holds what persist would leave)."""
    settings, store = fresh(endpoint, "drain")
    base = base_id()
    names = [f"drain-{b:04d}" for b in range(budgets)]
    heads = {}
    for b, name in enumerate(names):
        events = history(name, per_budget, base + b * per_budget)
        seed(store, events)
        heads[name] = events[-1].event_id
    return settings, store, names, heads


def wait_projected(
    store: Store, worker: Worker, names: list[str], heads: dict[str, str]
) -> tuple[float, float]:
    """(when the first event was applied, when every budget's pointer reached its head). The
    budgets named last are looked at first, so the poll's own reads stay few and light."""
    first: float | None = None
    left = list(names)
    while left:
        if worker.process is not None and worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited; see {worker.log_path}")
        if first is None and any(p is not None for p in store.pointers(names[:50]).values()):
            first = time.perf_counter()
        tail = store.pointers(left[-50:])
        if all(tail[b] == heads[b] for b in tail):
            now = store.pointers(left)
            left = [b for b in left if now[b] != heads[b]]
        if left:
            time.sleep(0.05)
    done = time.perf_counter()
    return (first if first is not None else done), done


def drop(store: Store, settings: Settings) -> None:
    """Delete a run's tables: a DynamoDB Local holding earlier runs' tables and streams
    answers later ones more slowly."""
    for table in (settings.events_table, settings.projections_table, settings.lease_table):
        with suppress(store.client.exceptions.ResourceNotFoundException):
            store.client.delete_table(TableName=table)


def per_budget(calls: dict[str, int], settings: Settings, budgets: int) -> dict[str, Any]:
    """The proxy's counts turned into calls per budget: the catch-up's own (position reads,
    events pages, transactions' BatchGetItem, steps), the deferred snapshot rebuilds' (other
    reads and writes of the projections table), the stream's and the leases'."""
    events, projections = settings.events_table, settings.projections_table
    both = ",".join(sorted([events, projections]))
    positions = calls.get(f"BatchGetItem {both}", 0)
    catch_up = (
        positions
        + calls.get(f"Query {events}", 0)
        + calls.get(f"BatchGetItem {projections}", 0)
        + calls.get(f"TransactWriteItems {projections}", 0)
    )
    rebuild = sum(
        n
        for key, n in calls.items()
        if key.endswith(f" {projections}")
        and not key.startswith(("TransactWriteItems", "BatchGetItem"))
    )
    stream = sum(n for key, n in calls.items() if key.endswith(" stream"))
    leases = sum(n for key, n in calls.items() if key.endswith(f" {settings.lease_table}"))
    return {
        "position_reads": positions,
        "catch_up_calls_per_budget": round(catch_up / budgets, 3),
        "position_reads_per_budget": round(positions / budgets, 3),
        "rebuild_calls_per_budget": round(rebuild / budgets, 3),
        "stream_calls": stream,
        "lease_calls": leases,
        "calls": dict(sorted(calls.items())),
    }


def drain(
    endpoint: str,
    budgets: int,
    events_per_budget: int,
    concurrency: int,
    logs_dir: Path,
    proxy: str | None = None,
    replay: bool = False,
) -> dict[str, Any]:
    """Drain a stored backlog through `run --driver local` (through the latency proxy if
    given); time from starting the process until every pointer reached its head. With
    `replay`, the drained stream is then replayed from the trim horizon (every budget now
    current) and timed until the checkpoints are back where the drain left them."""
    settings, store, names, heads = seeded(endpoint, budgets, events_per_budget)
    tag = f"{budgets}x{events_per_budget}-c{concurrency}-{'proxy' if proxy else 'local'}"
    worker = Worker(
        settings, concurrency, Settings.snapshot_delay, logs_dir / f"drain-{tag}.log", proxy
    )
    if proxy:
        counts(proxy, reset=True)
    started = time.perf_counter()
    worker.start()
    first, done = wait_projected(store, worker, names, heads)
    calls = counts(proxy, reset=True) if proxy else None
    worker.stop()
    total = budgets * events_per_budget
    row: dict[str, Any] = {
        "budgets": budgets,
        "events_per_budget": events_per_budget,
        "concurrency": concurrency,
        "through": "proxy" if proxy else "DynamoDB Local",
        "seconds_to_projected": round(done - started, 2),
        "events_per_s": round(total / (done - started), 1),
        "events_per_s_after_first_applied": round(total / (done - first), 1),
    }
    if calls is not None:
        row["counted"] = per_budget(calls, settings, budgets)
    if replay:
        row["replay"] = replayed(settings, store, worker, logs_dir / f"replay-{tag}.log", proxy)
        row["replay"]["events"] = total
        row["replay"]["events_per_s"] = round(total / row["replay"]["seconds"], 1)
    drop(store, settings)
    return row


def replayed(
    settings: Settings, store: Store, drained: Worker, log_path: Path, proxy: str | None
) -> dict[str, Any]:
    """`replay --trim-horizon` of a stream whose budgets are all current, then `run` again:
    seconds until every shard's checkpoint is back where the drain left it, also counted
    from the first checkpoint taken (the process's start-up excluded)."""
    leases = LeaseTable(store.client, settings.lease_table)
    end = {lease.shard_id: lease.checkpoint for lease in leases.all()}
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": settings.endpoint_url or "",
        "BUDGET_EVENTS_TABLE": settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": settings.projections_table,
        "BUDGET_LEASE_TABLE": settings.lease_table,
        "BUDGET_LOG_LEVEL": "warning",
    }
    subprocess.run(
        [sys.executable, "-m", "worker", "replay", "--trim-horizon", "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    worker = Worker(settings, drained.concurrency, drained.snapshot_delay, log_path, proxy)
    if proxy:
        counts(proxy, reset=True)
    started = time.perf_counter()
    worker.start()
    first: float | None = None
    while True:
        now = {lease.shard_id: lease.checkpoint for lease in leases.all()}
        if first is None and any(c not in (TRIM_HORIZON, end[s]) for s, c in now.items()):
            first = time.perf_counter()
        if now == end:
            break
        if worker.process is not None and worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited; see {log_path}")
        time.sleep(0.02)
    done = time.perf_counter()
    calls = counts(proxy, reset=True) if proxy else None
    worker.stop()
    found: dict[str, Any] = {
        "shards": len(end),
        "seconds": round(done - started, 2),
        "seconds_after_first_checkpoint": round(done - (first or done), 2),
    }
    if calls is not None:
        budgets = sum(1 for _ in store.budgets())
        found["counted"] = per_budget(calls, settings, budgets)
    return found


@dataclass
class LagRun:
    latencies: list[float] = field(default_factory=list)
    persisted_at: list[float] = field(default_factory=list)  # of each latency's event
    persist_ms: list[float] = field(default_factory=list)
    rss: list[dict[int, float]] = field(default_factory=list)
    polls: int = 0  # the watcher's own reads of the server: its load on the shared cores
    pointers_polled: int = 0


def by_window(run: LagRun, measured_from: float, width: float) -> dict[str, float]:
    """The lag's p99 (ms) of the events persisted in each `width` seconds, keyed by the
    window's start in seconds from the measured part's (negative: the warm-up)."""
    windows: dict[int, list[float]] = {}
    for persisted, latency in zip(run.persisted_at, run.latencies, strict=True):
        index = math.floor((persisted - measured_from) / width)
        windows.setdefault(index, []).append(latency * 1000)
    return {f"{w * width:g}": round(percentile(windows[w], 0.99), 1) for w in sorted(windows)}


def lag(
    endpoint: str,
    rate: float,
    budgets: int,
    seconds: float,
    concurrency: int,
    logs_dir: Path,
    snapshot_delay: float = Settings.snapshot_delay,
    months: int = 12,
    proxy: str | None = None,
    poll: float = POLL_SECONDS,
    warmup: float = WARMUP_SECONDS,
) -> dict[str, Any]:
    """The writer and the watcher talk to the server directly; only the worker goes through
    the proxy (the app's own persist latency is not what is measured). The first `warmup`
    seconds of writing are not measured (their p99 is reported apart): each phase starts a
    fresh DynamoDB Local, whose JVM spent more than a core compiling during its first half
    minute here, on the two cores the worker shares with it (a server's warm-up, not the
    worker's lag)."""
    settings, store = fresh(endpoint, "lag")
    names = [f"lag-{b:03d}" for b in range(budgets)]
    through = "proxy" if proxy else "local"
    worker = Worker(settings, concurrency, snapshot_delay, logs_dir / f"lag-{through}.log", proxy)
    worker.start()
    persister = Persister(store)
    # Start: one event per budget, and wait until the worker has applied them all (the
    # driver's and children's start-up is not lag).
    last: dict[str, str] = {}
    for name in names:
        warm = persister.persist(name, "TransactionCreated", "t0", _created(0, months))
        last[name] = warm.event_id
    while any(p != last[b] for b, p in store.pointers(names).items()):
        time.sleep(0.1)

    if proxy:
        counts(proxy, reset=True)
    run = LagRun()
    waiting: dict[str, list[tuple[str, float]]] = {}  # budget -> [(event id, persisted at)]
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()
    measuring = threading.Event()  # past the warm-up, still writing: the watcher's reads count

    def watch() -> None:
        while writing.is_set() or waiting:
            with lock:
                budgets_waiting = sorted(b for b, w in waiting.items() if w)
            if not budgets_waiting:
                time.sleep(poll)
                continue
            seen = store.pointers(budgets_waiting)
            if measuring.is_set():
                run.polls += 1
                run.pointers_polled += len(budgets_waiting)
            now = time.perf_counter()
            with lock:
                for budget, pointer in seen.items():
                    pending = waiting.get(budget, [])
                    while pending and pointer is not None and pointer >= pending[0][0]:
                        persisted = pending.pop(0)[1]
                        run.latencies.append(now - persisted)
                        run.persisted_at.append(persisted)
                    if not pending:
                        waiting.pop(budget, None)
            time.sleep(poll)  # the poll's own load must not be what is measured

    def sample() -> None:
        while writing.is_set():
            run.rss.append(worker.rss_mb())
            time.sleep(0.5)

    watchers = [threading.Thread(target=watch), threading.Thread(target=sample)]
    for thread in watchers:
        thread.start()
    unmeasured, total = int(rate * warmup), int(rate * (warmup + seconds))
    began = time.perf_counter()
    measured_from = began + warmup
    for n in range(total):
        slot = began + n / rate
        pause = slot - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        if n == unmeasured:
            measured_from = time.perf_counter()
            measuring.set()
            if proxy:
                # Calls per event from here on: they include the work on warm-up events still
                # in flight, as the work on the last measured events is left out.
                counts(proxy, reset=True)
        name = names[n % budgets]
        t0 = time.perf_counter()
        kind, tid, data = _event(n // budgets, months)
        event_id = persister.persist(name, kind, tid, data).event_id
        t1 = time.perf_counter()
        if n >= unmeasured:
            run.persist_ms.append((t1 - t0) * 1000)
        with lock:
            waiting.setdefault(name, []).append((event_id, t1))
        last[name] = event_id
    achieved = (total - unmeasured) / (time.perf_counter() - measured_from)
    measuring.clear()
    writing.clear()
    for thread in watchers:
        thread.join(timeout=120)
    calls = counts(proxy, reset=True) if proxy else None
    # What the reader sees: every budget read without a catch-up holds every event.
    for name in names:
        view = read_transactions(store, name, projector=None)
        assert view.as_of_event == last[name], name
    worker.stop()
    per_process = [sum(s.values()) for s in run.rss if s]
    steady = per_process[len(per_process) // 4 :]  # after the first quarter
    measured = [at >= measured_from for at in run.persisted_at]
    ms = [x * 1000 for x, m in zip(run.latencies, measured, strict=True) if m]
    warm_ms = [x * 1000 for x, m in zip(run.latencies, measured, strict=True) if not m]
    found: dict[str, Any] = {
        "through": "proxy" if proxy else "DynamoDB Local",
        "concurrency": concurrency,
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
        "warmup_seconds": warmup,
        "warmup_lag_p99_ms": round(percentile(warm_ms, 0.99), 1) if warm_ms else None,
        "persist_p50_ms": round(statistics.median(run.persist_ms), 2),
        "persist_p99_ms": round(percentile(run.persist_ms, 0.99), 2),
        "worker_rss_mb_steady_max": round(max(steady), 1),
        "worker_rss_mb_steady_median": round(statistics.median(steady), 1),
        "worker_processes": max(len(s) for s in run.rss),
        # Whether a tail is the run's start (a fresh server's JIT) or its steady state: p99
        # per 10 s of writing, keyed by the window's start (negative: the warm-up).
        "lag_p99_ms_by_10s": by_window(run, measured_from, 10.0),
        "watcher_poll_s": poll,
        "watcher_polls_per_s": round(run.polls / seconds, 1),
        "watcher_pointers_read_per_s": round(run.pointers_polled / seconds, 1),
    }
    if calls is not None:
        found["counted"] = per_budget(calls, settings, len(ms))
        found["counted"]["per"] = "event"
    drop(store, settings)
    return found


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
def server_and_raw_loop(seconds: float) -> Iterator[tuple[str, str, list[float], list[float]]]:
    """A fresh DynamoDB Local and a latency proxy in front of it; the raw loop measured on
    the server before and after the block, and once through the proxy (for reference)."""
    with harness.local_server() as endpoint:
        settings, store = fresh(endpoint, "raw")
        raw_loop(store, 2.0, 200)  # warm the server's JIT
        raws = [raw_loop(store, seconds, 5_000)]
        with proxied(endpoint) as proxy:
            slow = dataclasses.replace(settings, endpoint_url=proxy)
            proxied_raws = [raw_loop(Store.from_settings(aws.dynamodb(slow), slow), seconds, 500)]
            yield endpoint, proxy, raws, proxied_raws
        raws.append(raw_loop(store, seconds, 5_000))


def run_drains(
    endpoint: str, proxy: str, workloads: list[tuple[int, ...]], args: Any, logs_dir: Path
) -> list[dict[str, Any]]:
    drains = []
    for budgets, events in workloads:
        for through in (None, proxy):
            for concurrency in ints(args.concurrency):
                replay = budgets >= 1000 and concurrency == args.replay_concurrency
                row = drain(endpoint, budgets, events, concurrency, logs_dir, through, replay)
                drains.append(row)
                print(f"drain {json.dumps(row)}", flush=True)
    return drains


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="300x10,3000x1", help="budgets x events each")
    parser.add_argument("--concurrency", default="4,16,64")
    parser.add_argument("--replay-concurrency", type=int, default=Settings.concurrency)
    parser.add_argument("--lag-rate", type=float, default=50.0)
    parser.add_argument("--lag-budgets", type=int, default=100)
    parser.add_argument("--lag-seconds", type=float, default=60.0)
    parser.add_argument("--lag-through", default="proxy,local", help="'' for no lag phase")
    parser.add_argument("--lag-concurrency", type=int, default=Settings.concurrency)
    parser.add_argument(
        "--lag-poll",
        type=float,
        default=POLL_SECONDS,
        help="seconds between the lag watcher's pointer reads (its resolution, and its load)",
    )
    parser.add_argument(
        "--lag-warmup",
        type=float,
        default=WARMUP_SECONDS,
        help="seconds written at the lag's rate before it is measured",
    )
    parser.add_argument("--raw-seconds", type=float, default=10.0)
    parser.add_argument("--out", default=str(RESULTS / "end_to_end.json"))
    args = parser.parse_args()
    harness.quiet()
    logs_dir = Path("/tmp") / f"budget-bench-{uuid.uuid4().hex[:6]}"
    logs_dir.mkdir()
    workloads = [tuple(int(n) for n in w.split("x")) for w in args.workloads.split(",") if w]
    # Each phase on a server of its own: after the drains, a DynamoDB Local holding their
    # tables and streams answered the lag phase's writer 3-4x slower than a fresh one.
    raws: list[float] = []
    proxied_raws: list[float] = []
    drains: list[dict[str, Any]] = []
    if workloads:
        with server_and_raw_loop(args.raw_seconds) as (endpoint, proxy, raws, proxied_raws):
            drains = run_drains(endpoint, proxy, workloads, args, logs_dir)
    lags = []
    for through in [t for t in args.lag_through.split(",") if t]:
        with server_and_raw_loop(args.raw_seconds) as (endpoint, proxy, lag_raws, _):
            latency = lag(
                endpoint,
                args.lag_rate,
                args.lag_budgets,
                args.lag_seconds,
                args.lag_concurrency,
                logs_dir,
                months=1,
                proxy=proxy if through == "proxy" else None,
                poll=args.lag_poll,
                warmup=args.lag_warmup,
            )
            print(f"lag {json.dumps(latency)}", flush=True)
        latency["raw_loop_calls_per_s_same_server"] = [round(r, 1) for r in lag_raws]
        lags.append(latency)
        if not workloads:
            raws += lag_raws
    raw_rate = statistics.median(raws)
    local = {
        (r["budgets"], r["concurrency"]): r["events_per_s"]
        for r in drains
        if r["through"] == "DynamoDB Local"
    }
    for row in drains:
        row["ratio"] = round(row["events_per_s"] / raw_rate, 2)
        row["ratio_after_first_applied"] = round(
            row["events_per_s_after_first_applied"] / raw_rate, 2
        )
        if row["through"] == "proxy":
            row["share_of_local_drain"] = round(
                row["events_per_s"] / local[(row["budgets"], row["concurrency"])], 2
            )
        if "replay" in row:
            row["replay"]["ratio"] = round(row["replay"]["events_per_s"] / raw_rate, 2)
    figures = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "make bench (python -m benchmarks.end_to_end)",
        "server": "DynamoDB Local (in memory, loopback, same machine); proxy: "
        "benchmarks/latency_proxy.py in front of it",
        "raw_loop_calls_per_s": [round(r, 1) for r in raws],
        "raw_loop_median": round(raw_rate, 1),
        "raw_loop_through_proxy_calls_per_s": [round(r, 1) for r in proxied_raws],
        "drains": drains,
        "lag": lags,
        "worker_logs": str(logs_dir),
    }
    harness.write_results(Path(args.out), figures)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
