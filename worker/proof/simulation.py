"""Deterministic fault-injection simulation (FoundationDB-style, single-threaded).

Over ~450 lines on purpose: one cohesive concern, the schedule one seed drives (its actors,
faults, race points and checks share the seed's generator and its state; split, every draw
would have to be threaded through modules and a seed would no longer read as one story).

One seed fixes everything: which actor acts next (writers with skewed clocks, projectors,
readers, the snapshot rebuilder, and the stream record processor), which DynamoDB call fails
and how (refused, throttled, conflict, 5xx, response lost after commit, process crash before
or after a call), and where one actor is pre-empted by another in the middle of its own calls
(a botocore hook runs another actor's whole operation before the call goes out). After every
operation the invariants of docs/DESIGN.md are checked against the pure fold; at the end
faults are switched off, one clean catch-up and rebuild must converge everything.

Rare independent faults are absorbed by retries, so three things are chosen per seed on top
of them, so that the paths a proof of the checkpoint rule needs really run: outages (one
actor's client failing N consecutive calls), a budget throttled for a stretch of the schedule,
and a retry queue that refuses for a stretch. Catch-ups then fail, budgets stay pending across
batches, checkpoints are held, budgets are queued, shards end and shut down with budgets
pending; `SimReport.paths` counts how often each of those ran. Left to those windows, a
budget really behind at a checkpoint lined up in too few seeds for a planted bug in the
checkpoint rule to be found, so every correlated schedule also has one incident
(`Simulation._begin_incident`): the budget the stream is about to deliver is throttled for the
worker and the queue refuses, a new event of it is persisted, the stream delivers it, and the
seed ends the shard, shuts the worker down or takes another batch.

Pre-emption can happen before any DynamoDB call of any actor; at a seed-chosen rate the
pre-empting operation is a whole competing step, persist or rebuild *of the same budget*
(targeted), and pre-emptions nest. Reads are checked for currency, not only consistency: a
validated read must be as of at least the head the fault-free view saw when it began (or
raise StaleProjection), and a snapshot reader actor's fresh months must equal the figures at
a pointer no older than the one when its read began. Two calls are race points
(`Simulation._race_point`), pre-empted at a seed-chosen rate by a step of the same budget and
a second rebuild: a rebuild between its pointer re-check and its first write, and the snapshot
reader between its two queries; picked uniformly, that sequence landed there about once in
dozens of seeds.

A failing seed is reproduced by `budget-worker simulate --backend B --start SEED --seeds 1`
with the same `--ops`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

from worker.engine import backoff
from worker.engine.backoff import Backoff
from worker.engine.persist import Persister, PersistStatus
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder, SnapshotStore, read_snapshots
from worker.engine.validated_read import read_transactions
from worker.errors import BudgetWorkerError, StaleProjection
from worker.model import layout
from worker.model.events import Event, canonical_json
from worker.model.fold import fold
from worker.model.snapshot_math import all_snapshots, figures_at, next_month
from worker.proof.faults import Crash, Fault, FaultInjector, Rule
from worker.proof.kcl_inputs import Batch, Record
from worker.proof.oracle import projection_differences
from worker.stream.deferred_rebuilds import DeferredRebuilds
from worker.stream.record_processor import BudgetRecordProcessor
from worker.stream.records import ADAPTER, encode, stream_record
from worker.stream.runtime import after_catch_up, catch_up_then_rebuild, stream_catch_up_all
from worker.stream.settle import Outcome

FAULT_KINDS = [
    Fault.REFUSE,
    Fault.THROTTLE,
    Fault.CONFLICT,
    Fault.MIXED_CANCEL,
    Fault.SERVER_ERROR,
    Fault.LOSE_RESPONSE,
]
CRASH_KINDS = [Fault.CRASH_BEFORE, Fault.CRASH_AFTER]
NO_WAIT = Backoff(attempts=4, base=0.0, cap=0.0)
# Events per step an actor may use (a seed picks one per actor): single steps, short runs, and
# runs longer than most budgets' whole backlog in a simulation.
BATCH_SIZES = (1, 2, 5, 25)
# Calls that change nothing: the harness re-reads and re-checks the tables only after a call
# outside this set reached the server.
READ_OPERATIONS = frozenset(
    {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "DescribeTable"}
)
# Faults that can last (an outage): a call that reached nothing.
OUTAGE_KINDS = (Fault.REFUSE, Fault.SERVER_ERROR, Fault.THROTTLE)
# Operations a targeted pre-emption runs on the pre-empted actor's own budget.
COMPETING = ("write", "project", "rebuild")
# What a race point runs (in order, one nesting level down, on the pre-empted budget): a step
# that moves the pointer (a contended write, then its projection) and a second rebuild.
STEP_THEN_REBUILD = ("write", "project", "rebuild")
# The processor's snapshot-rebuild delay in simulated seconds (the clock moves 1 ms per
# operation): a budget the stream caught up is rebuilt at the first batch 3 operations later.
DEFERRED_DELAY = 0.003
# What a validated read's race point runs: a step that moves the pointer (a contended write,
# then its projection), between the read's pointer read and its query of the items.
STEP = ("write", "project")
# What a rebuild's race point among its reads of the months runs: a step that moves a
# transaction to the first month (`Simulation._backdate`), so that the months after it open
# with other balances.
BACKDATED_STEP = ("backdate", "project")
# Where in a rebuild that race point is: before its n-th query since its pointer read, n drawn
# per rebuild. Its queries are the markers, the snapshots, the first and the last month of the
# range, then the opening balances or the first month, then month by month: 5 lands the step
# before the months are read, 6 and 7 amid them. Each leaves a different mix of reads on either
# side of the step.
REBUILD_RACE_QUERIES = (5, 6, 7)
# Where in a snapshot read its race point is: before its 4th call. Its calls are the first and
# the last month of the range, the markers, then the snapshots, so the step and the rebuild land
# between the markers and the snapshots; with either pair of reads swapped (the planted bugs),
# the snapshots are read before the race. Drawn from the 2nd-4th call per read instead, the
# rebuild's race inside it (rebuild-ignores-moved-pointer) was found by none of 20 seeds.
READER_RACE_CALL = 4
# What the snapshot reader's race points run. Before its first call: a transaction created two
# months after the budget's last (`Simulation._spread`) and rebuilt, so that an empty month
# between has a snapshot, then deleted again (`Simulation._empty`): both months leave the
# range, their snapshots stay behind until a rebuild buries them, and only the later one
# carries a marker. Between two of its calls: a step that brings such a left-over month back
# into the range (`Simulation._revive`), then a rebuild. Together they are the schedule of
# seed 700346, which uniform draws met once in 951 seeds.
EMPTYING_STEP = ("spread", "project", "rebuild", "empty", "project")
REVIVING_STEP_THEN_REBUILD = ("revive", "project", "rebuild")
# The writes a race aims at the pre-empted budget (a new intent of it, never a pending one).
MOVING_KINDS = ("write", "backdate", "spread", "empty", "revive")
# What a projector's race point runs: a step of the items it holds, then one more update, so
# that its retry after losing the race applies an event on top of items it must re-read.
STEP_THEN_WRITE = ("write", "project", "write")
# How an incident's stream work ends after the batch that leaves its budget pending (a shard
# end and a shutdown are where the rule's other two checkpoints are taken).
INCIDENT_ENDINGS = ("shard end", "shard end", "shutdown", "batch only")


@contextmanager
def simulated_sleep() -> Iterator[None]:
    """The engine's retry helpers back off with a real `time.sleep` bound as a default
    argument; in a single-threaded simulation (time is `SimClock`) a real pause changes no
    outcome and only costs wall time, which outages and throttled stretches made the largest
    cost of a seed. Swapped for a no-op for the block, restored after it."""
    defaults = [backoff.retry_read.__kwdefaults__, backoff.retry_write.__kwdefaults__]
    saved = [d["sleep"] for d in defaults if d is not None]
    try:
        for d in defaults:
            if d is not None:
                d["sleep"] = _no_sleep
        yield
    finally:
        for d, sleep in zip((d for d in defaults if d is not None), saved, strict=True):
            d["sleep"] = sleep


def _no_sleep(_: float) -> None:
    return None


class Violation(BaseException):
    """An invariant did not hold. A BaseException, so that no `except Exception` in the code
    under test can swallow it on its way out of a pre-empting hook."""


@dataclass(slots=True)
class SimConfig:
    """A schedule's shape. Fields left None are chosen by the seed (`Schedule`)."""

    seed: int
    ops: int = 60
    budgets: int = 2
    writers: int = 3
    projectors: int = 2
    fault_rate: float = 0.06
    crash_rate: float = 0.015
    preempt_rate: float | None = None
    max_depth: int | None = None
    correlated: bool = True  # outages, a throttled budget, a refusing queue


@dataclass(frozen=True, slots=True)
class Schedule:
    """What the seed picks beyond the per-call draws, from a generator of its own (so that
    adding a choice here does not shift the main stream's draws)."""

    preempt_rate: float
    targeted_rate: float  # share of pre-emptions that run a competing op on the same budget
    max_depth: int
    outage_rate: float  # per call, per actor: the chance that an outage starts
    outage_kind: Fault
    outage_length: tuple[int, int]
    throttled_budget: int | None  # index into the budgets
    throttle_window: tuple[int, int]  # operations [from, to)
    refuse_window: tuple[int, int]  # the retry queue refuses in these operations
    queue_refuse_rate: float  # and at this rate outside them
    # The incident every correlated schedule of 10 operations or more has (`Simulation.
    # _begin_incident`): from this operation on, for `incident_length` operations, one budget is
    # throttled for the worker and the queue refuses; None: no incident.
    incident_at: int | None
    incident_length: int
    incident_ending: str  # one of INCIDENT_ENDINGS
    race_rate: float  # the chance that a race point (`Simulation._race_point`) is pre-empted

    @classmethod
    def pick(cls, config: SimConfig) -> Schedule:
        rng = random.Random(f"schedule-{config.seed}")

        def window() -> tuple[int, int]:
            start = rng.randrange(max(1, config.ops))
            return start, start + rng.randint(config.ops // 8 + 1, config.ops // 3 + 2)

        correlated = config.correlated
        throttle = window()
        # Half the seeds' refusal window is their throttle window (draws kept as they were;
        # every seed now also has the incident drawn below, which lines both up on purpose).
        refuse = throttle if rng.random() < 0.5 else window()
        return cls(
            preempt_rate=(
                config.preempt_rate
                if config.preempt_rate is not None
                else rng.choice((0.05, 0.1, 0.2))
            ),
            targeted_rate=rng.choice((0.3, 0.6, 0.9)),
            max_depth=config.max_depth if config.max_depth is not None else rng.choice((2, 3)),
            outage_rate=rng.choice((0.003, 0.01)) if correlated else 0.0,
            outage_kind=rng.choice(OUTAGE_KINDS),
            outage_length=(4, rng.choice((6, 12))),
            throttled_budget=(
                rng.randrange(config.budgets) if correlated and rng.random() < 0.7 else None
            ),
            throttle_window=throttle,
            refuse_window=refuse if correlated else (0, 0),
            queue_refuse_rate=rng.choice((0.1, 0.3)) if correlated else 0.0,
            # Drawn last, so that every choice above is the one the seed made before.
            incident_at=(
                rng.randrange(config.ops // 5, config.ops // 2) + 1
                if correlated and config.ops >= 10
                else None
            ),
            incident_length=rng.randint(4, 8),
            incident_ending=rng.choice(INCIDENT_ENDINGS),
            race_rate=rng.choice((0.4, 0.7)),
        )


@dataclass(slots=True)
class SimReport:
    seed: int
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    # How often each path the correlated faults exist for ran (held checkpoints, ...).
    paths: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    at_operation: int | None = None  # the top-level operation the first violation came in

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "operations": dict(self.operations),
            "faults": dict(self.faults),
            "outcomes": dict(self.outcomes),
            "checks": dict(self.checks),
            "paths": dict(self.paths),
            "violations": self.violations,
            "at_operation": self.at_operation,
        }


@dataclass(slots=True)
class Intent:
    key: str
    budget: str
    type: str
    transaction_id: str
    data: dict[str, Any]
    event_id: str | None  # the id the client holds (None: let the persister mint one)
    acked: str | None = None  # the stored id once a persist said so
    abandoned: bool = False  # crashed holding no id: may be stored at most once
    in_flight: bool = False  # its owner is persisting it right now (nobody else retries it)


@dataclass(eq=False, slots=True)
class QueueEntry:
    """A retry-queue message: covers the budget's records delivered up to `upto`. While a
    consumer holds it, it stays in the queue (as an SQS message in flight does) and no other
    consumer takes it; it leaves the queue only once its budget caught up."""

    budget: str
    upto: int
    in_flight: bool = False


@dataclass(slots=True)
class StreamRecordRef:
    sequence: int
    budget: str
    event_id: str


class SimClock:
    """Simulated time: advances one millisecond per operation; writers see it with a skew."""

    def __init__(self) -> None:
        self.millis = 1_790_000_000_000

    def tick(self) -> None:
        self.millis += 1

    def seconds(self, skew_ms: int = 0) -> float:
        return (self.millis + skew_ms) / 1000.0


class Simulation:
    def __init__(
        self,
        config: SimConfig,
        client_factory: Callable[[], Any],
        events_table: str,
        projections_table: str,
    ) -> None:
        self.config = config
        self.schedule = Schedule.pick(config)
        self.preempt_rate = self.schedule.preempt_rate
        self.rng = random.Random(config.seed)
        self.report = SimReport(config.seed)
        self.client_factory = client_factory
        self.tables = (events_table, projections_table)
        self.clock = SimClock()
        # Harness bookkeeping: `writes` counts calls that may have changed a table (any
        # actor call but a read that reached the server), so that the checks skip a state they
        # already checked and reuse the event log they already read.
        self.writes = 0
        self._checked_at: int | None = None
        self._events_cache: dict[str, tuple[int, list[Event]]] = {}
        clean_client = client_factory()
        self._watch_writes(clean_client)
        self.clean = Store(clean_client, events_table, projections_table)
        self.injectors: list[FaultInjector] = []
        self.depth = 0
        self.budget_stack: list[str] = []  # the budget of each operation under way, outermost first
        self.step = 0  # top-level operations begun
        self.contended = False  # a targeted write: it updates a transaction written just before
        self.aimed = False  # a write the schedule aims at a budget: a new intent of that budget
        self.backdating = False  # a contended write moves its transaction to the first month
        self.moving: str | None = None  # a contended write that spreads, empties or revives
        self.throttles: list[Rule] = []  # the throttled budget's rules, one per actor client
        # The incident's budget (chosen when it begins) and its throttle, one rule per client.
        self.incident_budget: str | None = None
        self.incident_rules: list[Rule] = []
        # Operations the schedule forces next (the incident's), with the stream's mode.
        self.script: list[tuple[str, str, str | None]] = []
        self.stream_mode: str | None = None
        # Race points: each actor's previous call, and the calls of the snapshot read under way.
        self._last_call: dict[str, str] = {}
        self._reader_calls = 0
        self._reader_emptied = False  # this read's first race ran: its second always does
        self._quiet = False  # no faults, no pre-emption (`_undisturbed`)
        self._rebuild_queries = 0  # the rebuilder's queries since its last pointer read
        self._rebuild_race_at = REBUILD_RACE_QUERIES[0]  # drawn at each pointer read
        self.race_rng = random.Random(f"race-{config.seed}")  # its own: no shifted draws
        self._in_race = 0  # race points under way (a race point inside one always fires)
        # The race points fired in the top-level operation under way: each fires once at most.
        # Bounded: a race lands more events on the budget, so a projector stepping one event at
        # a time that met its race at every step fell further behind the more it stepped (seeds
        # of 115 s and 2.7 GB, one of 6.9 GB, where a seed takes 5 s and 200 MB). Once per
        # kind, not once in all: a race nested in another (a rebuild's inside the snapshot
        # reader's) is where the rebuild's pointer re-check matters.
        self._races: set[str] = set()
        self.faults_on = True
        self._stores: dict[str, Store] = {}
        self.budgets = [f"sim{config.seed}-b{i}" for i in range(config.budgets)]
        self.intents: list[Intent] = []
        self.skews = [self.rng.randint(-5_000, 5_000) for _ in range(config.writers)]
        # The simulated stream: every stored event, in commit order, and the consumer state.
        self.stream: list[StreamRecordRef] = []
        self.seen_events: set[str] = set()
        self.checkpoint = 0  # records with sequence <= checkpoint are covered
        self.delivered = 0
        self.queue: list[QueueEntry] = []
        # Events per step for each actor, picked by the seed from its own stream (so adding
        # this did not change what the main stream draws): racing actors use different sizes.
        self.batch_rng = random.Random(f"batch-{config.seed}")
        self.batches: dict[str, int] = {}
        self.processor = self._new_processor()

    # -- clients ------------------------------------------------------------------------------

    def _store(self, actor: str) -> Store:
        """The actor's store: its client fails, crashes and gets pre-empted as the seed says.
        One client per actor for the whole run, like a process keeps its client."""
        if actor in self._stores:
            return self._stores[actor]
        client = self.client_factory()
        rules = [
            Rule("*", kind, probability=self.config.fault_rate / len(FAULT_KINDS), limit=None)
            for kind in FAULT_KINDS
        ]
        rules += [
            Rule("*", kind, probability=self.config.crash_rate / len(CRASH_KINDS), limit=None)
            for kind in CRASH_KINDS
        ]
        schedule = self.schedule
        if schedule.outage_rate:
            rules.append(
                Rule(
                    "*",
                    schedule.outage_kind,
                    probability=schedule.outage_rate,
                    limit=None,
                    burst=self.batch_rng.randint(*schedule.outage_length),
                )
            )
        # The throttled budget is throttled for the worker (its projection's partition),
        # not for writers: events keep arriving while its catch-ups fail, so a budget left
        # pending really is behind (a writer throttled too would leave nothing to be behind on,
        # and a checkpoint past it would be harmless, proving nothing).
        if schedule.throttled_budget is not None and not actor.startswith("writer"):
            throttle = Rule(
                "*",
                Fault.THROTTLE,
                limit=None,
                body_contains=f'"{self.budgets[schedule.throttled_budget]}"',
                active=self._throttling(),
            )
            self.throttles.append(throttle)
            rules.insert(0, throttle)
        if schedule.incident_at is not None and not actor.startswith("writer"):
            incident = Rule(
                "*",
                Fault.THROTTLE,
                limit=None,
                body_contains=f'"{self.incident_budget}"',
                active=self._in_incident(),
            )
            self.incident_rules.append(incident)
            rules.insert(0, incident)
        injector = FaultInjector(rules, seed=self.rng.getrandbits(32), enabled=self.faults_on)
        injector.install(client)
        self.injectors.append(injector)
        self._watch_writes(client)
        client.meta.events.register("before-call", self._preemption_hook(actor))
        self._stores[actor] = Store(client, *self.tables)
        return self._stores[actor]

    def _watch_writes(self, client: Any) -> None:
        """Count a possible write before the call (a pre-empting operation may read the
        tables meanwhile) and again once it ended either way (the server may have committed).
        Consumes no randomness, so the schedule is the same as without it."""
        for event in ("before-call", "after-call", "after-call-error"):
            client.meta.events.register(event, self._note_call)

    def _note_call(self, event_name: str, **_: Any) -> None:
        if event_name.rsplit(".", 1)[-1] not in READ_OPERATIONS:
            self.writes += 1

    def _events(self, budget: str) -> list[Event]:
        """The budget's event log as the clean client reads it, read again only after a write."""
        cached = self._events_cache.get(budget)
        if cached is not None and cached[0] == self.writes:
            return cached[1]
        events = self.clean.events(budget)
        self._events_cache[budget] = (self.writes, events)
        return events

    def _throttling(self) -> bool:
        start, end = self.schedule.throttle_window
        return self.faults_on and start <= self.step < end

    def _in_incident(self) -> bool:
        at = self.schedule.incident_at
        return (
            self.faults_on
            and at is not None
            and self.incident_budget is not None
            and at <= self.step < at + self.schedule.incident_length
        )

    def _preemption_hook(self, actor: str) -> Callable[..., None]:
        def hook(model: Any = None, **_: Any) -> None:
            self._maybe_preempt(actor, model.name if model is not None else "")

        return hook

    def _race_point(self, actor: str, operation: str) -> tuple[str, tuple[str, ...]] | None:
        """The two calls where a step and a second rebuild of the same budget must land for
        the snapshot races to show: after a rebuild's pointer re-check, before its first
        write (only the `as_of_event` condition keeps the slower rebuild from overwriting the
        newer one); and between two of the snapshot reader's queries (only their order
        keeps a rebuild finished in between from making stale snapshots look fresh; before its
        snapshots, `READER_RACE_CALL`). Uniform
        pre-emption lands a step and then a rebuild exactly there about once in dozens of
        seeds; a race point asks for them by name. A third is a projector between reading the
        items of its step and writing the step: a step of those items and one more update land
        there, so that it loses the race and must not decide its retry from the items it read
        (projector-keeps-cache-after-race was found at seed 8, then 16, then not in 20, as
        other changes moved the draws). A fourth is a validated read between its pointer read
        and its query: a step landing there is the torn read the second pointer read exists
        for (read-torn was found at seed 0, then 10, then not in 20, for the same reason). A
        fifth is a rebuild amid its reads of the months (at one of `REBUILD_RACE_QUERIES`): a
        step there makes the rebuild's reads straddle two pointers, which only its pointer
        re-check catches; inside the snapshot reader's race it is the schedule that found
        rebuild-ignores-moved-pointer (seed 3 on 24bfa3d, seed 9 on 2ace61a, none of 20 on
        b5fb835: luck). So a race point met inside another race always fires, and the
        rebuild's point moves among its queries from rebuild to rebuild."""
        previous = self._last_call.get(actor)
        self._last_call[actor] = operation
        if actor == "rebuilder" and operation == "PutItem" and previous == "GetItem":
            return "a rebuild between its pointer re-check and its first write", STEP_THEN_REBUILD
        if actor == "rebuilder" and operation == "GetItem":
            self._rebuild_queries = 0
            self._rebuild_race_at = self.race_rng.choice(REBUILD_RACE_QUERIES)
        elif actor == "rebuilder" and operation == "Query":
            self._rebuild_queries += 1
            if self._rebuild_queries == self._rebuild_race_at:
                return "a rebuild amid its reads of the months", BACKDATED_STEP
        if actor == "snapshot-reader":
            self._reader_calls += 1
            if self._reader_calls == READER_RACE_CALL:
                return "the snapshot reader between two of its queries", REVIVING_STEP_THEN_REBUILD
        if (
            actor.startswith("projector")
            and operation == "TransactWriteItems"
            and previous == "BatchGetItem"
        ):
            return "a projector between reading its items and its step", STEP_THEN_WRITE
        if actor == "reader" and operation == "Query" and previous == "GetItem":
            return "a validated read between its pointer read and its query", STEP
        return None

    def _maybe_preempt(self, actor: str, operation: str) -> None:
        """Before any call of any actor: maybe run another whole operation first. A targeted
        one competes for the same budget (a step, a persist or a rebuild landing between two
        reads of one operation is where the defended races live); at a race point, a step and
        then a second rebuild of the same budget."""
        race = self._race_point(actor, operation)
        if self._quiet or self.depth >= self.schedule.max_depth:
            return
        if race is not None and self._race_fires(
            race[0], forced=race[1] == REVIVING_STEP_THEN_REBUILD and self._reader_emptied
        ):
            self._preempt_race(*race)
            return
        if self.rng.random() >= self.preempt_rate:
            return
        self.report.operations["preemption"] += 1
        if self.depth:
            self.report.paths["nested preemption"] += 1
        kind = budget = None
        if self.budget_stack and self.rng.random() < self.schedule.targeted_rate:
            kind, budget = self.rng.choice(COMPETING), self.budget_stack[-1]
            self.report.paths[f"targeted preemption: {kind} of the same budget"] += 1
        self.depth += 1
        contended, self.contended = self.contended, kind == "write"
        try:
            self._operation(kind, budget)
        finally:
            self.depth -= 1
            self.contended = contended

    def _race_fires(self, race: str, forced: bool = False) -> bool:
        """Whether `race` runs here: once per top-level operation, always inside another race
        (or when `forced`), else at the seed's race rate. Counts it as run when it does."""
        fires = bool(
            race not in self._races
            and self.preempt_rate
            and (self._in_race or forced or self.rng.random() < self.schedule.race_rate)
        )
        if fires:
            self._races.add(race)
        return fires

    def _preempt_race(self, race: str, kinds: tuple[str, ...], undisturbed: bool = False) -> None:
        """`kinds` on the pre-empted budget, one level down: a step (a contended write of one
        of its latest transactions, then its projection), then a second rebuild or write; each
        `_undisturbed` if asked (a set-up)."""
        self.report.operations["preemption"] += 1
        if self.depth:
            self.report.paths["nested preemption"] += 1
        self.report.paths[f"race point: {race}"] += 1
        if self._in_race:
            self.report.paths["race point inside another race"] += 1
        budget = self.budget_stack[-1]
        self.depth += 1
        self._in_race += 1
        contended, aimed = self.contended, self.aimed
        try:
            for kind in kinds:
                self.contended = self.aimed = kind in MOVING_KINDS
                with self._undisturbed() if undisturbed else nullcontext():
                    self._operation(kind, budget)
        finally:
            self.depth -= 1
            self._in_race -= 1
            self.contended, self.aimed = contended, aimed

    @contextmanager
    def _undisturbed(self) -> Iterator[None]:
        """No fault and no pre-emption for the block: the state a race sets up before a read
        begins (a month left over outside the range) is there when it begins. Drawn faults
        and nested operations undid it in most reads (an emptying step that never committed,
        a rebuild that failed and left the markers that hide the month)."""
        enabled = [i.enabled for i in self.injectors]
        quiet, self._quiet = self._quiet, True
        for injector in self.injectors:
            injector.enabled = False
        try:
            yield
        finally:
            self._quiet = quiet
            for injector, was in zip(self.injectors, enabled, strict=False):
                injector.enabled = was

    # -- actors -------------------------------------------------------------------------------

    def _operation(self, kind: str | None = None, budget: str | None = None) -> None:
        kinds = ["write", "project", "read", "rebuild", "queue", "stream", "snapshots"]
        weights = [5, 3, 2, 1, 1, 2, 1]
        if self.depth:  # one shard is never processed by two processors at once
            kinds, weights = kinds[:5] + kinds[6:], weights[:5] + weights[6:]
        if kind is None:
            kind = self.rng.choices(kinds, weights=weights)[0]
        self.report.operations[kind] += 1
        if budget is None:
            budget = self.rng.choice(self.budgets)
        self.budget_stack.append(budget)
        try:
            getattr(self, f"_{kind}")(budget)
        except (Crash, SystemExit):
            self.report.outcomes[f"{kind}:crashed"] += 1
            if kind == "stream":
                self.processor = self._new_processor()  # restart from the checkpoint
                self.delivered = self.checkpoint
        except BudgetWorkerError as exc:
            self.report.outcomes[f"{kind}:{type(exc).__name__}"] += 1
        except Exception as exc:
            raise Violation(
                f"{kind} let an unclassified {type(exc).__name__} escape: {exc}"
            ) from exc
        finally:
            self.budget_stack.pop()

    def _write(self, budget: str) -> None:
        writer = self.rng.randrange(self.config.writers)
        pending = [
            i for i in self.intents if i.acked is None and not i.abandoned and not i.in_flight
        ]
        if pending and not self.aimed and self.rng.random() < 0.4:
            intent = self.rng.choice(pending)
        else:
            intent = self._new_intent(budget, writer)
            self.intents.append(intent)
        skew = self.skews[writer]
        persister = Persister(
            self._store(f"writer{writer}"),
            clock=lambda: self.clock.seconds(skew),
            new_id=lambda: self._ulid(skew),
            backoff=NO_WAIT,
            sleep=lambda _: None,
            rng=random.Random(self.rng.getrandbits(32)),
        )
        intent.in_flight = True
        try:
            result = persister.persist(
                intent.budget, intent.type, intent.transaction_id, intent.data, intent.event_id
            )
        except Crash:
            if intent.event_id is None:
                intent.abandoned = True  # the client never learned an id to retry with
            raise
        except BudgetWorkerError as exc:
            retry_id = getattr(exc, "retry_event_id", None)
            if retry_id and intent.event_id is None:
                intent.event_id = retry_id  # keep the key: the retry must be exactly once
            raise
        finally:
            intent.in_flight = False
        self.report.outcomes[f"write:{result.status}"] += 1
        intent.acked = result.event_id
        if intent.event_id is None or result.status is PersistStatus.REASSIGNED:
            intent.event_id = intent.event_id or result.event_id
        stored = self.clean.event(intent.budget, result.event_id)
        if stored is None or canonical_json(stored.data) != canonical_json(intent.data):
            raise Violation(
                f"persist acknowledged {result.event_id} for {intent.key} but the "
                "stored event is missing or different"
            )

    def _new_intent(self, budget: str, writer: int) -> Intent:
        n = len(self.intents)
        mine = [i for i in self.intents if i.budget == budget and i.type == "TransactionCreated"]
        roll = self.rng.random()
        if self.contended and mine:
            # Contention: update one of the budget's latest transactions, the ones the
            # pre-empted actor most likely holds in hand (a projector's item cache).
            mine, roll = mine[-3:], 0.45 + 0.35 * roll
        tid = f"w{writer}-{n}"
        data: dict[str, Any]
        # Taken here, before the write's first call: a write nested in it moves nothing.
        moving, self.moving = self.moving, None
        moved = self._month_move(budget, n, moving) if moving else None
        if moved is not None:
            kind, tid, data = moved
        elif roll < 0.45 or not mine:
            kind = "TransactionCreated"
            data = {
                "date": f"2026-{self.rng.randint(1, 4):02d}-{self.rng.randint(1, 28):02d}",
                "amount": self.rng.randint(-5000, 5000),
                "account": self.rng.choice(["chk", "card"]),
                "category": self.rng.choice(["a", "b"]),
                "memo": f"intent-{n}",
            }
        elif roll < 0.8:
            kind, tid = "TransactionUpdated", self.rng.choice(mine).transaction_id
            data = {"amount": self.rng.randint(-5000, 5000), "memo": f"intent-{n}"}
            if self.rng.random() < 0.3 or self.backdating:
                data["date"] = (
                    "2026-01-15" if self.backdating else f"2026-{self.rng.randint(1, 4):02d}-15"
                )
        elif roll < 0.9:
            kind, tid, data = "TransactionDeleted", self.rng.choice(mine).transaction_id, {}
        else:  # poison: must be rejected, never block
            kind, tid, data = "TransactionUpdated", f"ghost-{n}", {"memo": f"intent-{n}"}
        event_id = self._ulid(self.rng.choice(self.skews)) if self.rng.random() < 0.7 else None
        return Intent(f"intent-{n}", budget, kind, tid, data, event_id)

    def _backdate(self, budget: str) -> None:
        """A contended write that moves one of the budget's latest transactions to the first
        month: it changes the balances every later month opens with, which a rebuild that
        read its opening balances before this step and its months after it gets wrong."""
        self.backdating = True
        try:
            self._write(budget)
        finally:
            self.backdating = False

    def _spread(self, budget: str) -> None:
        """A contended write that creates a transaction two months after the budget's last."""
        self._moving_write(budget, "spread")

    def _empty(self, budget: str) -> None:
        """A contended write that deletes the only transaction of the budget's last month: it
        and the empty months before it leave the range, and their snapshots stay behind until
        a rebuild buries them; only the last carries a marker, so the empty months before it
        have none at or before them."""
        self._moving_write(budget, "empty")

    def _revive(self, budget: str) -> None:
        """A contended write that moves a transaction into a month whose snapshot was left
        behind outside the range: the month comes back, its stored figures stale."""
        self._moving_write(budget, "revive")

    def _moving_write(self, budget: str, how: str) -> None:
        """A write whose intent `_new_intent` takes from `_month_move`."""
        self.moving = how
        try:
            self._write(budget)
        finally:
            self.moving = None

    def _month_move(
        self, budget: str, n: int, moving: str
    ) -> tuple[str, str, dict[str, Any]] | None:
        """The intent of an emptying or reviving write, from the fault-free view; None (an
        ordinary write) if the budget has no such month."""
        live = sorted(
            fold(self._events(budget)).transactions.values(), key=lambda t: t.transaction_id
        )
        by_month: dict[str, list[str]] = {}
        for txn in live:
            by_month.setdefault(txn.month, []).append(txn.transaction_id)
        if moving == "spread":
            month = next_month(next_month(max(by_month, default="2026-01")))
            amount = self.rng.randint(-5000, 5000)
            data = {"date": f"{month}-15", "amount": amount, "account": "chk", "category": "a"}
            return "TransactionCreated", f"spread-{n}", data
        if moving == "empty":
            last_month = by_month.get(max(by_month, default=""), [])
            if len(last_month) != 1:
                return None
            self.report.paths["emptying write: the last month emptied"] += 1
            return "TransactionDeleted", last_month[0], {}
        first, last = min(by_month, default=None), max(by_month, default=None)
        snaps = SnapshotStore(self.clean)
        left_over = sorted(
            m
            for m in snaps.snapshots(budget)
            if first is None or last is None or not first <= m <= last
        )
        if not left_over:
            return None
        marked = min(snaps.markers(budget), default=None)
        unmarked = [m for m in left_over if marked is None or m < marked]  # seed 700346's kind
        month = self.rng.choice(unmarked or left_over)
        self.report.paths[
            "reviving write: a month left over with no marker before it"
            if unmarked
            else "reviving write: a month left over"
        ] += 1
        revived: dict[str, Any] = {
            "date": f"{month}-15",
            "memo": f"intent-{n}",
            "amount": self.rng.randint(-5000, 5000),
        }
        if not live:
            account = {"account": "chk", "category": "a"}
            return "TransactionCreated", f"revived-{n}", revived | account
        return "TransactionUpdated", self.rng.choice(live).transaction_id, revived

    def _ulid(self, skew_ms: int) -> str:
        millis = int(self.clock.seconds(skew_ms) * 1000)
        return str(ULID.from_int((millis << 80) | self.rng.getrandbits(80)))

    def _projector(self, actor: str, store: Store) -> Projector:
        if actor not in self.batches:
            self.batches[actor] = self.batch_rng.choice(BATCH_SIZES)
        return Projector(store, backoff=NO_WAIT, sleep=lambda _: None, batch=self.batches[actor])

    def _project(self, budget: str) -> None:
        actor = f"projector{self.rng.randrange(self.config.projectors)}"
        self._projector(actor, self._store(actor)).catch_up(budget)

    def _read(self, budget: str) -> None:
        """A validated read (I7), checked for consistency (equal to the fold at its own
        `as_of_event`) and for currency: as of at least the head when the read began."""
        store = self._store("reader")
        promised = self.clean.head(budget)  # the fault-free view, before the reader's first call
        # A third of the reads do not catch up (the API's catch_up=False): behind, they must
        # raise StaleProjection, which a catching-up read under rare faults almost never does.
        projector = self._projector("reader", store) if self.rng.random() < 0.67 else None
        try:
            view = read_transactions(store, budget, projector=projector)
        except StaleProjection as exc:
            self.report.paths["stale read raised"] += 1
            if str(exc.pointer or "none") not in str(exc) or str(exc.head or "none") not in str(
                exc
            ):
                raise Violation(f"stale error does not name pointer and head: {exc}") from None
            raise
        self.report.checks["validated read is as of at least the head when it began"] += 1
        if promised is not None and (view.as_of_event is None or view.as_of_event < promised):
            raise Violation(
                f"validated read of {budget} returned as of {view.as_of_event}, older than "
                f"the head {promised} when the read began, without StaleProjection"
            )
        expected = fold(
            e
            for e in self._events(budget)
            if view.as_of_event is not None and e.event_id <= view.as_of_event
        )
        self.report.checks["validated read equals the fold at its as_of_event"] += 1
        if {t.transaction_id: t for t in view.transactions} != dict(expected.transactions):
            raise Violation(
                f"validated read of {budget} at {view.as_of_event} differs from the fold"
            )

    def _rebuild(self, budget: str) -> None:
        Rebuilder(self._store("rebuilder"), attempts=2).rebuild(budget)

    def _leave_a_month_behind(self) -> None:
        """Before a snapshot read, at the race rate: the set-up of its race point between two
        of its queries (`EMPTYING_STEP`). It runs before the read begins, so the months it
        leaves behind are older than any pointer the read may present."""
        name = "the snapshot reader before its first query"
        if self.depth < self.schedule.max_depth and self._race_fires(name):
            self._reader_emptied = True
            self._preempt_race(name, EMPTYING_STEP, undisturbed=True)

    def _snapshots(self, budget: str) -> None:
        """The snapshot reader as an actor (its queries can be pre-empted). A month presented
        fresh must equal the figures over the fold at some pointer from the one when the read
        began to the one when it ended: right, and not older than what was promised."""
        store = self._store("snapshot-reader")
        outer = self._reader_calls, self._reader_emptied
        self._reader_calls, self._reader_emptied = 0, False  # this read's calls (race points)
        try:
            self._leave_a_month_behind()
            promised = self.clean.pointer(budget)  # after the set-up: the read begins here
            view = read_snapshots(store, budget)
        finally:
            self._reader_calls, self._reader_emptied = outer
        fresh = [e for e in view.entries if e.fresh]
        if not fresh:
            return
        self.report.paths["snapshot read presented a fresh month"] += 1
        final = self.clean.pointer(budget)
        events = self._events(budget)
        candidates = [promised] + [
            e.event_id
            for e in events
            if (promised is None or e.event_id > promised)
            and final is not None
            and e.event_id <= final
        ]
        figures = [figures_at(events, p) for p in candidates]
        self.report.checks["snapshot read: fresh months equal the fold at a current pointer"] += 1
        for entry in fresh:
            shown = entry.snapshot.figures() if entry.snapshot else None
            if not any(f.get(entry.month) == shown for f in figures):
                raise Violation(
                    f"{budget}: snapshot reader presented {entry.month} fresh, but it equals "
                    f"no computation at a pointer from {promised} to {final}"
                )

    def _queue(self, _budget: str) -> None:
        """The retry queue's consumer: catch up the oldest queued budget no other consumer
        holds; the message stays queued until then (and after a failure)."""
        entry = next((e for e in self.queue if not e.in_flight), None)
        if entry is None:
            return
        entry.in_flight = True
        try:
            self._handle("queue-consumer", entry.budget)
        except BaseException:
            self.report.paths["queue consumer failed, message kept"] += 1
            raise
        finally:
            entry.in_flight = False
        self.queue.remove(entry)
        self.report.paths["queued budget caught up by the queue consumer"] += 1

    def _handle(self, actor: str, budget: str) -> Any:
        """What the worker does for a budget (runtime.budget_handler), on the actor's client."""
        store = self._store(actor)
        projector = self._projector(actor, store)
        return catch_up_then_rebuild(projector, Rebuilder(store, attempts=2))(budget)

    def _process(self, budgets: list[str]) -> Iterator[Outcome]:
        """The record processor's catch-up is production's (`runtime.stream_catch_up_all`:
        the batch's positions read together, the budgets behind caught up, the head not
        re-read, each budget then marked for its deferred rebuild), on one thread so that a
        seed replays. An inline rebuild (`BUDGET_SNAPSHOT_DELAY=0`) would be a different
        path: its failure leaves the budget pending, which hid a position read taken for
        success (batch-read-failure-taken-as-current survived 20 seeds that way)."""
        store = self._store("processor")
        catch_up_all = stream_catch_up_all(
            store,
            after_catch_up(Rebuilder(store), self.deferred),
            workers=1,
            projector=self._projector("processor", store),
        )
        for done in catch_up_all(budgets):
            if done.error is not None:
                self.report.paths["catch-up failed in the record processor"] += 1
            yield done

    def _deferred_rebuild(self, budget: str) -> None:
        self.report.paths["deferred rebuild run"] += 1
        Rebuilder(self._store("processor")).rebuild(budget)

    def _new_processor(self) -> BudgetRecordProcessor:
        """A new `kcl-processor` child: its deferred rebuilds are its own (a process that
        died loses them; the markers stay for the next catch-up or the sweep)."""
        self.deferred = DeferredRebuilds(
            self._deferred_rebuild, delay=DEFERRED_DELAY, clock=self.clock.seconds
        )
        processor = BudgetRecordProcessor(
            queue=_SimQueue(self),
            catch_up_all=self._process,
            sleep=lambda _: None,
        )
        processor.initialize(_Init())
        return processor

    def _stream(self, _budget: str) -> None:
        """One batch; sometimes instead the shard ends (everything so far is its last batch)
        or the worker is asked to shut down; both restart from the checkpoint, like a child
        shard's or the next owner's processor. An incident says which (`stream_mode`)."""
        self.deferred.run_due()  # what the child's rebuild thread did since the last batch
        self._discover_stream_records()
        mode, self.stream_mode = self.stream_mode, None
        if mode == "shutdown":
            self._shutdown()
            return
        if mode is not None:  # a batch to the end of the stream, then maybe the shard's end
            self._batch(len(self.stream))
            if mode == "shard end":
                self._shard_end()
            return
        roll = self.rng.random()
        if roll < 0.06:
            self._shutdown()
            return
        # A shard end is likelier while budgets are pending: that is when its rule matters.
        ends = roll < (0.3 if self.processor.pending else 0.12)
        size = len(self.stream) if ends else self.rng.randint(1, 6)
        self._batch(size)
        if ends:
            self._shard_end()

    def _batch(self, size: int) -> None:
        batch = [r for r in self.stream if r.sequence > self.delivered][:size]
        self.delivered = batch[-1].sequence if batch else self.delivered
        records = [
            Record(
                encode(
                    stream_record(r.budget, layout.event_sk(r.event_id), sequence=r.sequence),
                    ADAPTER,
                ),
                str(r.sequence),
            )
            for r in batch
        ]
        before = set(self.processor.pending)
        self.processor.process_records(Batch(records, _SimCheckpointer(self)))
        after = set(self.processor.pending)
        self.report.paths["budget pending after a batch"] += len(after)
        self.report.paths["budget pending across batches"] += len(before & after)
        if records and after:
            self.report.paths["checkpoint held"] += 1
            if self._behind(after):
                self.report.paths["checkpoint held with the budget behind"] += 1

    def _behind(self, budgets: set[str]) -> bool:
        """Whether a delivered record of one of these (pending) budgets is past the budget's
        pointer and not queued: only then would a checkpoint break the rule. A budget is also
        left pending when its catch-up succeeded and its rebuild failed, or when another actor
        caught it up first; a checkpoint past it is harmless and proves nothing."""
        for budget in budgets:
            pointer = self.clean.pointer(budget)
            for record in self.stream:
                if record.sequence > self.delivered:
                    break
                if (
                    record.budget == budget
                    and (pointer is None or pointer < record.event_id)
                    and not any(
                        e.budget == budget and e.upto >= record.sequence for e in self.queue
                    )
                ):
                    return True
        return False

    def _shard_end(self) -> None:
        try:
            self.processor.shard_ended(_Ended(_SimCheckpointer(self)))
        except SystemExit:
            self.report.paths["shard end: exited with budgets pending"] += 1
            if self._behind(set(self.processor.pending)):
                self.report.paths["shard end: exited with a budget behind"] += 1
            self.deferred.close()  # the child's way out (run_kcl_processor's finally)
            raise
        self.report.paths["shard end: checkpointed"] += 1
        self.deferred.close()
        self.processor = self._new_processor()  # the child shard's processor
        self.delivered = self.checkpoint

    def _shutdown(self) -> None:
        held = bool(self.processor.pending)
        self.processor.shutdown_requested(_Ended(_SimCheckpointer(self)))
        self.report.paths[
            "shutdown: checkpoint held (budgets pending)"
            if held and self.processor.pending
            else "shutdown: checkpointed"
        ] += 1
        if held and self.processor.pending and self._behind(set(self.processor.pending)):
            self.report.paths["shutdown: checkpoint held with a budget behind"] += 1
        self.deferred.close()
        self.processor = self._new_processor()  # the next owner, from the checkpoint
        self.delivered = self.checkpoint

    def _discover_stream_records(self) -> None:
        """Append every newly stored event to the simulated stream (commit order per budget
        is ULID order, I1)."""
        for budget in self.budgets:
            for event in self._events(budget):
                if event.event_id not in self.seen_events:
                    self.seen_events.add(event.event_id)
                    self.stream.append(
                        StreamRecordRef(len(self.stream) + 1, budget, event.event_id)
                    )

    # -- checks -------------------------------------------------------------------------------

    def check(self) -> None:
        """Every invariant, unless nothing was written since the last check: the same state
        would pass the same checks again (the harness's largest cost on moto)."""
        if self._checked_at == self.writes:
            self.report.outcomes["check:state unchanged since the last check"] += 1
            return
        for budget in self.budgets:
            self._check_budget(budget)
        self._check_intents(final=False)
        self._checked_at = self.writes

    def _check_budget(self, budget: str) -> None:
        head = self.clean.head(budget)
        events = self._events(budget)
        if head != (max(e.event_id for e in events) if events else None):
            raise Violation(f"{budget}: head {head} is not the greatest event id")
        expected, problems = projection_differences(self.clean, budget, events)
        self.report.checks["pointer and transactions equal the fold up to the pointer"] += 1
        if problems:
            raise Violation(f"{budget}: {problems[0]}")
        oracle = {s.month: s.figures() for s in all_snapshots(expected.transactions.values())}
        self.report.checks["no snapshot presented fresh while dirty"] += 1
        for entry in read_snapshots(self.clean, budget).entries:
            if entry.fresh and (
                entry.snapshot is None or oracle.get(entry.month) != entry.snapshot.figures()
            ):
                raise Violation(f"{budget}: snapshot {entry.month} presented fresh but wrong")

    def _check_intents(self, *, final: bool) -> None:
        contents: Counter[str] = Counter()
        for budget in self.budgets:
            for e in self._events(budget):
                contents[f"{budget}|{e.type}|{e.transaction_id}|{canonical_json(e.data)}"] += 1
        self.report.checks["no intent persisted twice"] += 1
        for intent in self.intents:
            key = (
                f"{intent.budget}|{intent.type}|{intent.transaction_id}|"
                f"{canonical_json(intent.data)}"
            )
            if intent.type == "TransactionDeleted":
                continue  # deletes carry no data: two deletes of one id look alike
            count = contents[key]
            if count > 1:
                raise Violation(f"{intent.key} is stored {count} times")
            if (intent.acked or (final and not intent.abandoned)) and count != 1:
                raise Violation(f"{intent.key} acknowledged/retried but stored {count} times")

    def _check_checkpoint(self, sequence: int) -> None:
        self.report.checks["checkpoint covers only handled budgets"] += 1
        pointers: dict[str, str | None] = {}  # one read per budget: nothing moves meanwhile
        for record in self.stream:
            if record.sequence > sequence:
                break
            if record.budget not in pointers:
                pointers[record.budget] = self.clean.pointer(record.budget)
            pointer = pointers[record.budget]
            queued = any(
                e.budget == record.budget and e.upto >= record.sequence for e in self.queue
            )
            if (pointer is None or pointer < record.event_id) and not queued:
                raise Violation(
                    f"checkpoint {sequence} covers {record.event_id} of "
                    f"{record.budget} while its pointer is {pointer}"
                )

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> SimReport:
        """Every violation, the final convergence's included, is a result of the seed (with
        the operation it came in), never an exception: a run of many seeds must report them."""
        with simulated_sleep():
            self._run()
        for injector in self.injectors:
            self.report.faults.update(injector.injected)
        return self.report

    def _run(self) -> None:
        try:
            for _ in range(self.config.ops):
                self.step += 1
                self.clock.tick()
                if self.step == self.schedule.incident_at:
                    self._begin_incident()
                for rule in self.throttles:
                    rule.active = self._throttling()
                for rule in self.incident_rules:
                    rule.active = self._in_incident()
                self._races.clear()
                if self.script:
                    kind, budget, self.stream_mode = self.script.pop(0)
                    self.aimed = kind == "write"
                    try:
                        self._operation(kind, budget)
                    finally:
                        self.aimed = False
                        self.stream_mode = None
                else:
                    self._operation()
                self.check()
            self.step += 1
            self._converge()
        except Violation as exc:
            self._violation(str(exc))
        except Exception as exc:  # the clean client, the final persist or catch-up
            what = "convergence" if self.step > self.config.ops else "the harness"
            self._violation(f"{what} failed: {type(exc).__name__}: {exc}")

    def _begin_incident(self) -> None:
        """The incident that makes the checkpoint rule observable, once per schedule: the
        budget the stream actor is about to handle (its next undelivered record's, else one
        the seed picks) is throttled for the worker and the retry queue refuses, for a few
        operations. A new event of that budget is persisted, then the stream delivers every
        record so far, so the batch names a budget whose catch-up must fail and cannot be
        queued while it really is behind; the seed then ends the shard, shuts the worker down
        or does neither. Left to chance (a throttle window and a refusal window of their own,
        a stream batch that happens to reach the budget's new records), this lined up in few
        enough seeds that both checkpoint-rule mutants survived twenty."""
        self._discover_stream_records()
        ahead = next((r.budget for r in self.stream if r.sequence > self.delivered), None)
        budget = ahead if ahead is not None else self.rng.choice(self.budgets)
        self.incident_budget = budget
        for rule in self.incident_rules:
            rule.body_contains = f'"{budget}"'
        self.report.paths["incident: a budget throttled for the worker, the queue refusing"] += 1
        self.script = [("write", budget, None), ("stream", budget, "batch")]
        ending = self.schedule.incident_ending
        if ending != "batch only":
            self.script.append(("stream", budget, ending))

    def _violation(self, text: str) -> None:
        self.report.violations.append(text)
        self.report.at_operation = self.step

    def _converge(self) -> None:
        """Faults off; retry every intent the clients still hold; one clean catch-up and
        rebuild per budget; then everything must equal the pure computation."""
        self.faults_on = False
        for injector in self.injectors:
            injector.enabled = False
        self.preempt_rate = 0.0
        persister = Persister(
            self.clean,
            clock=lambda: self.clock.seconds(),
            new_id=lambda: self._ulid(0),
            rng=random.Random(self.config.seed),
        )
        for intent in self.intents:
            if intent.acked is None and not intent.abandoned:
                result = persister.persist(
                    intent.budget, intent.type, intent.transaction_id, intent.data, intent.event_id
                )
                intent.acked = result.event_id
        for budget in self.budgets:
            Projector(self.clean).catch_up(budget)
            Rebuilder(self.clean).rebuild(budget)
        self.queue.clear()  # every queued budget was just caught up
        self._stream_drain()
        self.check()
        self._check_intents(final=True)
        for budget in self.budgets:
            if self.clean.pointer(budget) != self.clean.head(budget):
                raise Violation(f"{budget}: pointer did not converge to the head")
            view = read_snapshots(self.clean, budget)
            if view.dirty_months or not all(e.fresh for e in view.entries):
                raise Violation(f"{budget}: snapshots did not converge")
            state = fold(self.clean.events(budget))
            expected = [s.figures() for s in all_snapshots(state.transactions.values())]
            if [e.snapshot.figures() for e in view.entries if e.snapshot] != expected:
                raise Violation(
                    f"{budget}: converged snapshots differ from the pure figures (months or values)"
                )
        self.report.checks["converged after one clean catch-up"] += 1

    def _stream_drain(self) -> None:
        self.processor = self._new_processor()
        self.delivered = self.checkpoint
        self._discover_stream_records()
        while self.delivered < len(self.stream):
            self._stream(self.budgets[0])
        if self.stream and self.checkpoint != len(self.stream):
            raise Violation(
                f"stream not checkpointed to its end ({self.checkpoint} of "
                f"{len(self.stream)}) with every budget caught up"
            )


# -- stand-ins for amazon_kclpy's inputs, over the simulated stream ------------------------------


class _Init:
    shard_id = "shardId-sim"
    sequence_number = "TRIM_HORIZON"


class _Ended:
    """ShardEndedInput / ShutdownRequestedInput: only the checkpointer is used."""

    def __init__(self, checkpointer: _SimCheckpointer) -> None:
        self.checkpointer = checkpointer


class _SimCheckpointer:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None:
        sequence = int(sequence_number) if sequence_number else self.sim.delivered
        self.sim._check_checkpoint(sequence)
        self.sim.checkpoint = max(self.sim.checkpoint, sequence)


class _SimQueue:
    """The retry queue: refuses (like SQS being down) for a seed-chosen stretch of the
    schedule, and now and then outside it."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def enqueue(self, budget: str, reason: str) -> None:
        sim = self.sim
        start, end = sim.schedule.refuse_window
        if (
            start <= sim.step < end
            or sim._in_incident()
            or sim.rng.random() < sim.schedule.queue_refuse_rate
        ):
            sim.report.paths["enqueue refused"] += 1
            raise RuntimeError("queue unavailable (simulated)")
        sim.report.paths["budget queued"] += 1
        sim.queue.append(QueueEntry(budget, sim.delivered))
