"""Deterministic fault-injection simulation (FoundationDB-style, single-threaded).

One seed fixes everything: which actor acts next (writers with skewed clocks, projectors,
readers, the snapshot rebuilder, and the stream record processor), which DynamoDB call fails
and how (refused, throttled, conflict, 5xx, response lost after commit, process crash before
or after a call), and where one actor is pre-empted by another in the middle of its own calls
(a botocore hook runs another actor's whole operation before the call goes out). After every
operation the invariants of docs/DESIGN.md are checked against the pure fold; at the end
faults are switched off, one clean catch-up and rebuild must converge everything.

A failing seed is reproduced by `budget-worker simulate --backend B --start SEED --seeds 1`
with the same `--ops`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

from worker.engine.backoff import Backoff
from worker.engine.persist import Persister, PersistStatus
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder, read_snapshots
from worker.engine.validated_read import read_transactions
from worker.errors import BudgetWorkerError, StaleProjection
from worker.model import layout
from worker.model.events import Event, canonical_json
from worker.model.fold import fold
from worker.model.snapshot_math import all_snapshots
from worker.proof.faults import Crash, Fault, FaultInjector, Rule
from worker.proof.kcl_inputs import Batch, Record, record_data
from worker.proof.oracle import projection_differences
from worker.stream.record_processor import BudgetRecordProcessor
from worker.stream.runtime import catch_up_then_rebuild

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


class Violation(BaseException):
    """An invariant did not hold. A BaseException, so that no `except Exception` in the code
    under test can swallow it on its way out of a pre-empting hook."""


@dataclass(slots=True)
class SimConfig:
    seed: int
    ops: int = 60
    budgets: int = 2
    writers: int = 3
    projectors: int = 2
    fault_rate: float = 0.06
    crash_rate: float = 0.015
    preempt_rate: float = 0.08
    max_depth: int = 2


@dataclass(slots=True)
class SimReport:
    seed: int
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "operations": dict(self.operations),
            "faults": dict(self.faults),
            "outcomes": dict(self.outcomes),
            "checks": dict(self.checks),
            "violations": self.violations,
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
        # (budget, last sequence delivered when it was enqueued): the queue covers those records
        self.queue: list[tuple[str, int]] = []
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
        injector = FaultInjector(rules, seed=self.rng.getrandbits(32), enabled=self.faults_on)
        injector.install(client)
        self.injectors.append(injector)
        self._watch_writes(client)
        client.meta.events.register("before-call", self._maybe_preempt)
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

    def _maybe_preempt(self, **_: Any) -> None:
        if self.depth >= self.config.max_depth:
            return
        if self.rng.random() >= self.config.preempt_rate:
            return
        self.report.operations["preemption"] += 1
        self.depth += 1
        try:
            self._operation()
        finally:
            self.depth -= 1

    # -- actors -------------------------------------------------------------------------------

    def _operation(self) -> None:
        kinds = ["write", "project", "read", "rebuild", "queue", "stream"]
        weights = [5, 3, 2, 1, 1, 2]
        if self.depth:  # one shard is never processed by two processors at once
            kinds, weights = kinds[:-1], weights[:-1]
        kind = self.rng.choices(kinds, weights=weights)[0]
        self.report.operations[kind] += 1
        budget = self.rng.choice(self.budgets)
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

    def _write(self, budget: str) -> None:
        writer = self.rng.randrange(self.config.writers)
        pending = [
            i for i in self.intents if i.acked is None and not i.abandoned and not i.in_flight
        ]
        if pending and self.rng.random() < 0.4:
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
        tid = f"w{writer}-{n}"
        data: dict[str, Any]
        if roll < 0.45 or not mine:
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
            if self.rng.random() < 0.3:
                data["date"] = f"2026-{self.rng.randint(1, 4):02d}-15"
        elif roll < 0.9:
            kind, tid, data = "TransactionDeleted", self.rng.choice(mine).transaction_id, {}
        else:  # poison: must be rejected, never block
            kind, tid, data = "TransactionUpdated", f"ghost-{n}", {"memo": f"intent-{n}"}
        event_id = self._ulid(self.rng.choice(self.skews)) if self.rng.random() < 0.7 else None
        return Intent(f"intent-{n}", budget, kind, tid, data, event_id)

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
        store = self._store("reader")
        try:
            view = read_transactions(store, budget, projector=self._projector("reader", store))
        except StaleProjection as exc:
            if str(exc.pointer or "none") not in str(exc) or str(exc.head or "none") not in str(
                exc
            ):
                raise Violation(f"stale error does not name pointer and head: {exc}") from None
            raise
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

    def _queue(self, _budget: str) -> None:
        """The retry queue's consumer: catch up the oldest queued budget; keep it on failure."""
        if not self.queue:
            return
        budget, _ = self.queue[0]
        self._handle("queue-consumer", budget)
        self.queue.pop(0)

    def _handle(self, actor: str, budget: str) -> Any:
        """What the worker does for a budget (runtime.budget_handler), on the actor's client."""
        store = self._store(actor)
        projector = self._projector(actor, store)
        return catch_up_then_rebuild(projector, Rebuilder(store, attempts=2))(budget)

    def _new_processor(self) -> BudgetRecordProcessor:
        processor = BudgetRecordProcessor(
            lambda budget: self._handle("processor", budget),
            _SimQueue(self),
            sleep=lambda _: None,
        )
        processor.initialize(_Init())
        return processor

    def _stream(self, _budget: str) -> None:
        self._discover_stream_records()
        batch = [r for r in self.stream if r.sequence > self.delivered][: self.rng.randint(1, 6)]
        self.delivered = batch[-1].sequence if batch else self.delivered
        records = [
            Record(
                record_data(r.budget, layout.event_sk(r.event_id), sequence=r.sequence),
                str(r.sequence),
            )
            for r in batch
        ]
        self.processor.process_records(Batch(records, _SimCheckpointer(self)))

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
            queued = any(b == record.budget and upto >= record.sequence for b, upto in self.queue)
            if (pointer is None or pointer < record.event_id) and not queued:
                raise Violation(
                    f"checkpoint {sequence} covers {record.event_id} of "
                    f"{record.budget} while its pointer is {pointer}"
                )

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> SimReport:
        try:
            for _ in range(self.config.ops):
                self.clock.tick()
                self._operation()
                self.check()
            self._converge()
        except Violation as exc:
            self.report.violations.append(str(exc))
        for injector in self.injectors:
            self.report.faults.update(injector.injected)
        return self.report

    def _converge(self) -> None:
        """Faults off; retry every intent the clients still hold; one clean catch-up and
        rebuild per budget; then everything must equal the pure computation."""
        self.faults_on = False
        for injector in self.injectors:
            injector.enabled = False
        self.config.preempt_rate = 0.0
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
    """The retry queue: fails (like SQS being down) as often as the seed says."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def enqueue(self, budget: str, reason: str) -> None:
        if self.sim.rng.random() < 0.5:
            raise RuntimeError("queue unavailable (simulated)")
        self.sim.queue.append((budget, self.sim.delivered))
