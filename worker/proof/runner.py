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

import json
import multiprocessing
import os
import queue
import resource
import signal
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from worker import logs
from worker.config import Settings, temporary_env
from worker.engine import aws
from worker.engine.tables import create_tables
from worker.proof.simulation import SimConfig, SimReport, Simulation

log = logs.get(__name__)

SIM_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "simulation", "AWS_SECRET_ACCESS_KEY": "simulation"}


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


def _counter_table(
    title: str, first: str, runs: list[RunSummary], counters: list[Counter[str]]
) -> list[str]:
    """A Markdown section: one row per name, one column per run."""
    lines = [
        "",
        f"## {title}",
        "",
        f"| {first} | " + " | ".join(r.backend for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for name in sorted(set().union(*counters)):
        lines.append(f"| {name} | " + " | ".join(str(c[name]) for c in counters) + " |")
    return lines


def render_report(runs: list[RunSummary], bad_inputs: dict[str, Any] | None) -> str:
    """docs/RELIABILITY.md, regenerated by `budget-worker simulate --report`."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability report",
        "",
        f"Generated {when} by `budget-worker simulate --report docs/RELIABILITY.md` "
        "(see `worker/proof/simulation.py` for what a schedule does and what is checked).",
        "",
        "Each seed is one deterministic schedule: writers with skewed clocks (client-held and "
        "generated ids, retries of ambiguous intents, poison events), racing projectors, "
        "validated readers, the snapshot rebuilder, the retry-queue consumer and the stream "
        "record processor, interleaved by the seed, with faults injected at the botocore layer "
        "and actors pre-empted between their own DynamoDB calls. Invariants are checked after "
        "every operation; at the end faults stop and one clean catch-up must converge. Since "
        "issue 17 each seed also picks correlated faults (outages of one client, a budget "
        "throttled for the worker, a retry queue that refuses) so that catch-ups fail and the "
        "checkpoint rule, the queue, shard end and shutdown run; targeted pre-emptions (a "
        "whole competing step, persist or rebuild of the same budget) that nest; a snapshot "
        "reader actor; and reads are checked for currency, not only consistency.",
        "",
        "## Schedules run",
        "",
        "| backend | seeds | operations per seed | operations run | time |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run.backend} | {len(run.seeds)} (from {min(run.seeds, default=0)}) "
            f"| {run.ops} | {sum(run.operations.values())} | {run.seconds:.0f} s |"
        )
    fault_kinds: list[Counter[str]] = []
    for run in runs:  # "Operation:kind" -> kind
        kinds: Counter[str] = Counter()
        for key, count in run.faults.items():
            kinds[key.split(":", 1)[1]] += count
        fault_kinds.append(kinds)
    lines += _counter_table("Operations by kind", "operation", runs, [r.operations for r in runs])
    lines += _counter_table("Faults injected by kind", "fault", runs, fault_kinds)
    lines += _counter_table("Invariant checks made", "check", runs, [r.checks for r in runs])
    lines += _counter_table(
        "Paths exercised (correlated faults, targeted and nested pre-emption)",
        "path",
        runs,
        [r.paths for r in runs],
    )
    lines += ["", "## Violations", ""]
    failures = [(run, f) for run in runs for f in run.failures]
    if not failures:
        lines.append("None in these runs.")
    for run, failure in failures:
        lines.append(
            f"- seed {failure.seed} ({run.backend}): {'; '.join(failure.violations)} "
            f"— reproduce: `{run.reproduce(failure.seed)}`"
        )
    lines += [
        "",
        "Found by the simulation while it was built, and fixed:",
        "",
        "- the snapshot rebuilder's month-range query bypassed the retry loop, so a "
        "throttled query escaped as a raw botocore error;",
        "- (in the harness) two simulated processes could retry one id-less intent at "
        "once, which is outside the exactly-once contract; intents are now owned by one "
        "process at a time;",
        "- (in the harness, issue 17) the retry-queue consumer read `queue[0]` then "
        "`pop(0)`, so a nested consumer could take the same message and the outer one drop "
        "another; and a failure in the final convergence escaped the run, losing every "
        "seed's results. Messages are now held in flight, and a convergence failure is a "
        "violation of its seed.",
        "",
        "Found by review and fixed (regression tests in `tests/test_faults.py`, "
        "`tests/test_events.py`, `tests/test_record_processor.py`, `tests/test_snapshots.py`, "
        "`tests/test_local_driver.py`): mixed cancellation reasons misread as 'event absent' "
        "(a second copy of an intent) or 'item ahead' (a wrongly rejected event); client "
        "ids far in the future freezing a budget's head; ISO week dates, lone surrogates "
        "and over-long integers crashing instead of exiting 2; a shard end declined while a "
        "budget was pending (would stall the shard under the MultiLangDaemon); local lease "
        "heartbeats only between batches and a forced replay overwritten by the running "
        "worker; a snapshot reader catching a rebuild halfway presenting a stale running "
        "balance as fresh; the retry-queue consumer dying on a failed delete.",
    ]
    if bad_inputs is not None:
        lines += [
            "",
            "## Bad inputs tried",
            "",
            "Every input below got a clear error (the expected exit code or rejection) and "
            "nothing was written or lost (`worker/proof/bad_inputs.py`).",
            "",
            "| entry point | inputs | handled as specified |",
            "|---|---|---|",
        ]
        for entry, result in bad_inputs.items():
            lines.append(f"| {entry} | {result['tried']} | {result['ok']} |")
        problems = [p for r in bad_inputs.values() for p in r.get("problems", [])]
        if problems:
            lines += ["", "Problems:", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def render_long_runs(documents: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The long runs' section, from the `simulate --json` documents committed next to the
    report (docs/simulation-runs/*.json), so that regenerating the report keeps them."""
    if not documents:
        return []
    lines = [
        "",
        "## Long runs",
        "",
        "Each row is one committed `budget-worker simulate --json` document "
        "(`docs/simulation-runs/`); figures are that run's own.",
        "",
        "| run | backend | seeds | ops per seed | jobs | wall time | seconds per seed "
        "| peak RSS | faults | checks | violations | stopped by |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    kinds: Counter[str] = Counter()
    for name, document in documents:
        for run in document["runs"]:
            kinds.update(run.get("faults_by_kind", {}))
            rss = f"{run['peak_rss_mb']:.0f} MB"
            after = run.get("peak_rss_mb_after_seeds") or {}
            if len(after) > 1:  # flat from 10 seeds on if memory is that of one seed
                rss += " (after " + ", ".join(f"{n}: {mb:.0f}" for n, mb in after.items()) + ")"
            if run.get("server_peak_rss_mb") is not None:
                rss += f" (DynamoDB Local {run['server_peak_rss_mb']:.0f} MB)"
            stopped = (
                "interrupt"
                if run["interrupted"]
                else "time budget"
                if run["time_budget_reached"]
                else "all seeds run"
            )
            lines.append(
                f"| {name} | {run['backend']} | {run['seeds']} (from {run['first_seed']}) "
                f"| {run['ops_per_seed']} | {run['jobs']} | {run['seconds']:.0f} s "
                f"| {run['seconds_per_seed']} s | {rss} | {sum(run['faults'].values())} "
                f"| {sum(run['checks'].values())} | {len(run['violations'])} | {stopped} |"
            )
    lines += [
        "",
        "Faults injected in these runs, by kind: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        + ".",
    ]
    with_paths = [(n, r) for n, d in documents for r in d["runs"] if r.get("paths")]
    if with_paths:  # runs made since issue 17: what their schedules exercised
        lines += [
            "",
            "| run | " + " | ".join(LONG_RUN_PATHS) + " |",
            "|---|" + "---|" * len(LONG_RUN_PATHS),
        ]
        for name, run in with_paths:
            counts = [str(run["paths"].get(path, 0)) for path in LONG_RUN_PATHS]
            lines.append(f"| `{name}` | " + " | ".join(counts) + " |")
    return lines


# The paths a long run must show non-zero counts for (issue 17). A checkpoint held while the
# budget is really behind is the one a planted bug in the checkpoint rule shows on; a held
# checkpoint alone may be for a budget already caught up by someone else.
LONG_RUN_PATHS = (
    "budget pending across batches",
    "checkpoint held",
    "checkpoint held with the budget behind",
    "budget queued",
    "stale read raised",
    "nested preemption",
)


def render_mutation_table(document: dict[str, Any]) -> list[str]:
    """The kill-rate table (docs/RELIABILITY.md) from one committed run's document."""
    results = document["results"]
    mutants = [r for r in results if r["name"] != "baseline (no mutant)"]
    found = sum(r["found"] for r in mutants)
    equivalent = sum(1 for r in mutants if not r["found"] and r["equivalent"])
    lines = [
        f"Planted bugs found: {found} of {len(mutants)} "
        f"({equivalent} survivor(s) argued equivalent below), hunting seeds "
        f"{document['start']} to {document['start'] + document['seeds'] - 1} at "
        f"{document['ops']} operations on moto, stopping at the first violation. Command: "
        f"`{document['command']}`; run {document['when']}.",
        "",
        "| planted bug | breaks | found | seed | operation | seeds run | first violation |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        verdict = "yes" if r["found"] else "error" if r["error"] else "no"
        detail = (
            r["violation"]
            or r["error"]
            or (f"survived: equivalent, {r['equivalent']}" if r["equivalent"] else "survived")
        )
        detail = detail.replace("|", "/")
        if len(detail) > 160:
            detail = detail[:157] + "..."
        lines.append(
            f"| `{r['name']}` | {r['breaks']} | {verdict} | {r['seed'] if r['found'] else '-'} "
            f"| {r['at_operation'] if r['found'] else '-'} | {r['seeds_run']} | {detail} |"
        )
    return lines


def render_mutation_runs(documents: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The planted-bug section, from the newest committed `python -m worker.proof.mutation
    run --json` document (docs/mutation-runs/), so that regenerating the report keeps it."""
    if not documents:
        return []
    name, document = documents[-1]
    return [
        "",
        "## Planted bugs: what the simulation finds",
        "",
        f"From `docs/mutation-runs/{name}.json`. Each planted bug is one edit of a copy of the "
        "package (`worker/proof/mutation.py` lists them with what each breaks); the "
        "unmutated copy ran the same seeds first.",
        "",
        *render_mutation_table(document),
    ]


def write_report(path: Path, runs: list[RunSummary], bad_inputs: dict[str, Any] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    documents = [
        (p.stem, json.loads(p.read_text()))
        for p in sorted((path.parent / "simulation-runs").glob("*.json"))
    ]
    mutation_runs = [
        (p.stem, json.loads(p.read_text()))
        for p in sorted((path.parent / "mutation-runs").glob("*.json"))
    ]
    notes = path.parent / "simulation-runs" / "NOTES.md"  # measurements made by hand
    path.write_text(
        render_report(runs, bad_inputs)
        + "".join(f"{line}\n" for line in render_long_runs(documents))
        + "".join(f"{line}\n" for line in render_mutation_runs(mutation_runs))
        + (f"\n{notes.read_text()}" if notes.exists() else "")
    )
