"""Runs the simulation over many seeds, on moto (fast) or DynamoDB Local (the real server),
and writes the reliability report.

    budget-worker simulate --backend moto --seeds 1000 --jobs 2 --time-budget 45m
    budget-worker simulate --backend local --seeds 10
    budget-worker simulate --report docs/RELIABILITY.md   # regenerate the report

Long runs must not grow: every seed gets its own tables, deleted when the seed ends, so a
worker process holds at most one seed's data whatever the run's length. Seeds run in `jobs`
spawned worker processes; a seed's schedule depends on its number alone, so its result is the
same whatever the number of jobs. Results reach the caller as each seed ends, so an
interrupted or time-limited run still reports every seed it finished. A failing seed prints
the one command that reproduces it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import resource
import signal
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from worker import logs
from worker.config import Settings, temporary_env
from worker.engine import aws
from worker.engine.tables import create_tables

# mutation.py imports the kill-rate table from here (it predates report.py).
from worker.proof.report import render_mutation_table as render_mutation_table
from worker.proof.run_summary import RunSummary, SeedResult
from worker.proof.simulation import SimConfig, Simulation

log = logs.get(__name__)

SIM_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "simulation", "AWS_SECRET_ACCESS_KEY": "simulation"}


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _server_peak_rss_mb(pid: int) -> float | None:
    """Another process's peak resident set (VmHWM), while it runs; None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class SeedRunner:
    """Runs seeds one after another in this process, each on tables of its own that are
    deleted when it ends (also when it fails), so memory stays that of one seed.

    On moto (`endpoint_url` None) each seed also runs in a mock of its own: moto keeps every
    table object it ever made, deep copies taken for transaction rollback included, in a
    class-level list that only the end of an outermost mock clears, so deleting the tables
    alone still let a process grow by about 30 MB a seed at 80 operations. Inside an enclosing
    mock (a test's) the seed's mock is nested and the enclosing one keeps its data.

    One boto3 session serves every client: a session per client would load the service
    model again for each of a seed's ten clients."""

    def __init__(self, endpoint_url: str | None) -> None:
        self.endpoint_url = endpoint_url
        if endpoint_url is None:
            _moto()  # its botocore handlers must be known before the session is made
        self.session = boto3.session.Session(
            aws_access_key_id=SIM_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=SIM_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=Settings().region,
        )

    def settings(self, seed: int) -> Settings:
        run = uuid.uuid4().hex[:8]  # unique even on a DynamoDB Local that others share
        return Settings(
            events_table=f"sim-{seed}-{run}-e",
            projections_table=f"sim-{seed}-{run}-p",
            endpoint_url=self.endpoint_url,
        )

    def client(self, settings: Settings) -> Any:
        return self.session.client(
            "dynamodb",
            endpoint_url=settings.endpoint_url,
            config=aws._config(settings),  # exactly the production client configuration
        )

    def run(self, seed: int, ops: int) -> SeedResult:
        if self.endpoint_url is None:
            with moto_backend():
                return self._run(seed, ops)
        return self._run(seed, ops)

    def _run(self, seed: int, ops: int) -> SeedResult:
        began = time.monotonic()
        settings = self.settings(seed)
        admin = self.client(settings)
        create_tables(admin, settings)
        try:
            report = Simulation(
                SimConfig(seed=seed, ops=ops),
                lambda: self.client(settings),
                settings.events_table,
                settings.projections_table,
            ).run()
        finally:
            for table in (settings.events_table, settings.projections_table):
                admin.delete_table(TableName=table)
        return SeedResult(report, time.monotonic() - began, peak_rss_mb())


def _moto() -> Any:
    try:
        import moto
    except ImportError as exc:  # a dev dependency
        raise RuntimeError("the moto backend needs moto (pip install -e '.[dev]')") from exc
    return moto


@contextmanager
def moto_backend() -> Iterator[str | None]:
    """moto for the duration of the block; yields the endpoint (None: moto intercepts)."""
    with temporary_env(SIM_CREDENTIALS), _moto().mock_aws():
        yield None


@contextmanager
def local_backend(endpoint: str | None, summary: RunSummary | None = None) -> Iterator[str]:
    """DynamoDB Local at `endpoint`, or one started for the block (its peak memory is
    recorded in `summary` before it stops)."""
    from worker.local import dynamodb_local

    if endpoint:
        yield endpoint
        return
    server = dynamodb_local.start()
    try:
        yield server.endpoint_url
    finally:
        if summary is not None:
            summary.server_peak_rss_mb = _server_peak_rss_mb(server.pid)
        server.stop()


# -- worker processes ----------------------------------------------------------------------------

_worker: SeedRunner | None = None


def _worker_init(backend: str, endpoint: str | None) -> None:
    """A spawned worker: quiet and deaf to the terminal's Ctrl-C (the parent decides when the
    run stops). On moto each seed brings its own mock (SeedRunner)."""
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure("critical")
    _worker = SeedRunner(None if backend == "moto" else endpoint)


class SeedCrashed(RuntimeError):
    """The harness itself failed on a seed in a worker process (not a violation: those are
    results). Carries the worker's traceback as text, because botocore's exceptions do not
    survive pickling back to the parent (the run would wait for them for ever)."""


def _worker_run(seed: int, ops: int) -> SeedResult:
    assert _worker is not None, "worker process not initialised"
    try:
        return _worker.run(seed, ops)
    except Exception as exc:
        raise SeedCrashed(f"seed {seed}: {traceback.format_exc()}") from exc


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Stop(BaseException):
    """SIGINT or SIGTERM, as an exception on the main thread."""


_stop_requested = False


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM stop the run, which reports what it finished. The
    signal also sets a flag checked between seeds, in case code under test (or moto) swallows
    the exception raised in the middle of a seed."""
    global _stop_requested
    _stop_requested = False

    def stop(*_: Any) -> None:
        global _stop_requested
        _stop_requested = True
        raise _Stop

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_seeds(
    backend: str,
    start: int,
    seeds: int,
    ops: int,
    *,
    endpoint: str | None = None,
    jobs: int = 1,
    time_budget: float | None = None,
    progress: Callable[[SeedResult], None] | None = None,
) -> RunSummary:
    """Run seeds `start` .. `start + seeds - 1`. `jobs` > 1 runs them in spawned worker
    processes; 1 runs them here (so that tests can patch the code under test). A seed starts
    only if it is expected to end within `time_budget` seconds; seeds still running when it
    is spent are abandoned. Ctrl-C (and SIGTERM inside `sigterm_interrupts`) ends the run
    with what finished, `interrupted` set."""
    summary = RunSummary(backend, ops=ops, jobs=jobs)
    began = time.monotonic()
    deadline = None if time_budget is None else began + time_budget
    todo = iter(range(start, start + seeds))

    def report(result: SeedResult) -> None:
        summary.add(result)
        if progress is not None:
            progress(result)

    def fits() -> bool:
        if _stop_requested:
            raise _Stop
        if deadline is None:
            return True
        done = len(summary.seeds)
        expected = summary.seed_seconds / done if done else 0.0
        if time.monotonic() + expected <= deadline:
            return True
        summary.time_budget_reached = True
        return False

    try:
        with _backend(backend, endpoint, summary) as url:
            if jobs <= 1:
                runner = SeedRunner(url)
                for seed in todo:
                    if not fits():
                        break
                    report(runner.run(seed, ops))
            else:
                _run_pool(backend, url, jobs, todo, ops, deadline, fits, report, summary)
    except (KeyboardInterrupt, _Stop):
        summary.interrupted = True
    summary.seeds.sort()
    summary.failures.sort(key=lambda r: r.seed)
    summary.seconds = time.monotonic() - began
    summary.peak_rss_mb = max(summary.peak_rss_mb, peak_rss_mb())
    return summary


@contextmanager
def _backend(backend: str, endpoint: str | None, summary: RunSummary) -> Iterator[str | None]:
    if backend == "moto":
        yield None  # each seed runs in a mock of its own (SeedRunner)
    else:
        with local_backend(endpoint, summary) as url:
            yield url


def _run_pool(
    backend: str,
    url: str | None,
    jobs: int,
    todo: Iterator[int],
    ops: int,
    deadline: float | None,
    fits: Callable[[], bool],
    report: Callable[[SeedResult], None],
    summary: RunSummary,
) -> None:
    """At most `jobs` seeds in flight, so that stopping loses at most `jobs` seeds' work."""
    finished: queue.SimpleQueue[SeedResult | BaseException] = queue.SimpleQueue()
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(
        jobs,
        initializer=_worker_init,
        initargs=(backend, url),
    )
    in_flight = 0
    try:
        exhausted = False
        while True:
            while not exhausted and in_flight < jobs and fits():
                seed = next(todo, None)
                if seed is None:
                    exhausted = True
                    break
                pool.apply_async(
                    _worker_run, (seed, ops), callback=finished.put, error_callback=finished.put
                )
                in_flight += 1
            if in_flight == 0:
                return
            try:
                item = finished.get(timeout=0.5)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    summary.time_budget_reached = True
                    return  # seeds still running are abandoned: the budget is spent
                continue
            in_flight -= 1
            if isinstance(item, BaseException):
                raise item
            report(item)
    finally:
        pool.terminate()
        pool.join()


def run_bad_inputs(cli_main: Callable[[list[str]], None]) -> dict[str, Any]:
    """The bad-input corpus on fresh moto tables. `cli_main` is the CLI's entry point, passed
    in by the caller so that the proof layer never imports the CLI (which imports it)."""
    from worker.proof.bad_inputs import run_corpus

    with moto_backend():
        settings = Settings(events_table="corpus-events", projections_table="corpus-projections")
        create_tables(aws.dynamodb(settings), settings)
        return run_corpus(settings, cli_main)
