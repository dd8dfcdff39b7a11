"""The batch-wide catch-up (`worker.engine.catch_ups.catch_up_budgets`) on DynamoDB Local.

Counted, not timed: a client that records every call says which budget each call was for, so
"current budgets cost nothing more" and "a behind budget costs three calls" are asserted
exactly (a count is deterministic, a time is not). Against the fold: whatever budgets fail
(their steps refused) and however many keys the server leaves unprocessed, every other budget
ends equal to the pure fold of its events, and a failed one is reported and left whole. And
the record processor's checkpoint rule holds when its catch-ups go through this path.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import CREATE_T, assert_matches_fold, intents, new_budget
from tests.test_record_processor import FakeCheckpointer, Queue, rec
from worker.config import Settings
from worker.engine import aws
from worker.engine.catch_ups import POSITION_READS_AHEAD, catch_up_budgets, keep
from worker.engine.persist import Persister
from worker.engine.projector import Projector
from worker.engine.reads import Store
from worker.proof.kcl_inputs import Batch
from worker.stream.record_processor import BudgetRecordProcessor
from worker.stream.runtime import stream_catch_up_all

POSITIONS = "positions"  # the batch-wide read of pointers and heads, shared by many budgets
SHARED = "shared"


class RecordingClient:
    """A boto3 DynamoDB client that records each call as (operation, whom): the one budget it
    names, POSITIONS for a BatchGetItem of pointers and heads, SHARED for anything naming
    several budgets. It can also refuse the steps of `doomed` budgets (AccessDenied: the
    server answered, nothing changed) and leave the first items of the next `unprocessed`
    BatchGetItem answers unprocessed, as a server short of capacity does."""

    def __init__(self, client: Any, budgets: Iterable[str]) -> None:
        self._client = client
        self.budgets = set(budgets)
        self.calls: list[tuple[str, str]] = []
        self.doomed: set[str] = set()
        self.unprocessed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _record(self, operation: str, params: dict[str, Any]) -> set[str]:
        text = json.dumps(params)
        named = {b for b in self.budgets if f'"{b}"' in text}
        if operation == "BatchGetItem" and '"POINTER"' in text:
            whom = POSITIONS
        elif len(named) == 1:
            [whom] = named
        else:
            whom = SHARED
        self.calls.append((operation, whom))
        return named

    def per_budget(self) -> dict[str, Counter[str]]:
        found: dict[str, Counter[str]] = {}
        for operation, whom in self.calls:
            found.setdefault(whom, Counter())[operation] += 1
        return found

    def batch_get_item(self, **params: Any) -> Any:
        self._record("BatchGetItem", params)
        page = self._client.batch_get_item(**params)
        if self.unprocessed > 0:
            self.unprocessed -= 1
            for table, items in page["Responses"].items():
                held, page["Responses"][table] = (
                    items[: len(items) // 2 + 1],
                    items[len(items) // 2 + 1 :],
                )
                if held:
                    keys = [{"pk": i["pk"], "sk": i["sk"]} for i in held]
                    page.setdefault("UnprocessedKeys", {})[table] = {
                        "Keys": keys,
                        "ConsistentRead": True,
                    }
        return page

    def transact_write_items(self, **params: Any) -> Any:
        named = self._record("TransactWriteItems", params)
        if named & self.doomed:
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "injected"}},
                "TransactWriteItems",
            )
        return self._client.transact_write_items(**params)

    def query(self, **params: Any) -> Any:
        self._record("Query", params)
        return self._client.query(**params)

    def get_item(self, **params: Any) -> Any:
        self._record("GetItem", params)
        return self._client.get_item(**params)


def recording_store(settings: Settings, budgets: Iterable[str]) -> tuple[Store, RecordingClient]:
    client = RecordingClient(aws.dynamodb(settings), budgets)
    return Store(client, settings.events_table, settings.projections_table), client  # type: ignore[arg-type]


class MeetingReads(RecordingClient):
    """Position reads (BatchGetItems of pointers) that must meet: each waits at a barrier of
    `meet`, so reads issued one after another never pass it (BrokenBarrierError)."""

    def __init__(self, client: Any, budgets: Iterable[str], meet: int) -> None:
        super().__init__(client, budgets)
        self.barrier = threading.Barrier(meet, timeout=30)

    def batch_get_item(self, **params: Any) -> Any:
        if '"POINTER"' in json.dumps(params) and not self.barrier.broken:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait()
        return super().batch_get_item(**params)


def history(store: Store, budget: str, events: int) -> None:
    """`events` events (>= 2) on two transactions, the last one poison (rejected, I6)."""
    persister = Persister(store)
    persister.persist(budget, "TransactionCreated", "t1", CREATE_T)
    for i in range(events - 2):
        persister.persist(budget, "TransactionUpdated", "t1", {"amount": i})
    persister.persist(budget, "TransactionDeleted", "ghost", {})


def test_current_budgets_cost_their_share_of_one_read_and_behind_ones_three_calls(
    ddb_settings: Settings, store: Store
) -> None:
    current = [new_budget() for _ in range(130)]
    behind = [new_budget() for _ in range(30)]
    never = [new_budget() for _ in range(5)]  # named by a record, nothing persisted: current
    for budget in current + behind:
        history(store, budget, 2)
    for budget in current:
        Projector(store).catch_up(budget)
    for budget in behind:
        history(store, budget, 8)
    everyone = current + behind + never
    recording, client = recording_store(ddb_settings, everyone)

    outcomes = list(catch_up_budgets(recording, everyone, keep, workers=4))

    assert sorted(d.item for d in outcomes) == sorted(everyone)
    assert all(d.error is None for d in outcomes)
    calls = client.per_budget()
    assert calls.pop(POSITIONS) == Counter({"BatchGetItem": math.ceil(len(everyone) / 50)})
    for budget in behind:  # its events, its transactions, the step; no head re-read
        assert calls.pop(budget) == Counter(
            {"Query": 1, "BatchGetItem": 1, "TransactWriteItems": 1}
        )
    assert calls == {}  # nothing for current budgets, nothing shared
    for d in outcomes:
        assert d.value is not None
        assert d.value.was_behind == (d.item in behind)
        assert d.value.pointer == d.value.head == store.head(d.item)
    for budget in behind:
        assert_matches_fold(store, budget)


def test_following_the_head_costs_one_read_more_per_behind_budget(
    ddb_settings: Settings, store: Store
) -> None:
    """The sweep's path: no later stream record may name the budget, so the head is re-read
    once it is reached (events persisted meanwhile are applied too)."""
    behind = [new_budget() for _ in range(3)]
    for budget in behind:
        history(store, budget, 5)
    recording, client = recording_store(ddb_settings, behind)

    list(catch_up_budgets(recording, behind, keep, workers=2, follow_head=True))

    calls = client.per_budget()
    for budget in behind:
        assert calls[budget] == Counter(
            {"Query": 1, "BatchGetItem": 1, "TransactWriteItems": 1, "GetItem": 1}
        )


def test_a_replay_of_current_budgets_costs_one_call_per_fifty(
    ddb_settings: Settings, store: Store
) -> None:
    budgets = [new_budget() for _ in range(200)]
    for budget in budgets:
        history(store, budget, 2)
        Projector(store).catch_up(budget)
    recording, client = recording_store(ddb_settings, budgets)
    client.unprocessed = 2  # and two answers short of capacity: their keys asked again

    outcomes = list(catch_up_budgets(recording, budgets + budgets[:10], keep, workers=8))

    assert sorted(d.item for d in outcomes) == sorted(budgets)  # duplicates handled once
    assert all(d.error is None and d.value and not d.value.was_behind for d in outcomes)
    assert client.per_budget() == {POSITIONS: Counter({"BatchGetItem": 4 + 2})}


def test_a_failed_position_read_fails_every_budget_of_its_chunk(
    ddb_settings: Settings, store: Store
) -> None:
    budgets = [new_budget() for _ in range(60)]
    for budget in budgets:
        history(store, budget, 2)
    recording, client = recording_store(ddb_settings, budgets)
    client.unprocessed = 1_000  # never answered in full: the read gives up after its retries

    outcomes = list(catch_up_budgets(recording, budgets, keep, workers=2))

    assert sorted(d.item for d in outcomes) == sorted(budgets)
    assert all("unprocessed" in str(d.error) for d in outcomes)


# Per budget: the events persisted before it was caught up once (None: never caught up), the
# events persisted after, and whether its steps are refused during the batch-wide catch-up.
plans = st.lists(
    st.tuples(
        st.lists(intents, max_size=6),
        st.booleans(),
        st.lists(intents, max_size=8),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=12)
@given(plans, st.integers(min_value=0, max_value=3), st.sampled_from([1, 3, 8]))
def test_batch_wide_catch_up_skips_current_budgets_and_brings_the_rest_to_the_fold(
    ddb_settings: Settings,
    plan: list[tuple[list[Any], bool, list[Any], bool]],
    unprocessed: int,
    workers: int,
) -> None:
    plain = Store.from_settings(aws.dynamodb(ddb_settings), ddb_settings)
    budgets = [new_budget() for _ in plan]
    before: dict[str, tuple[str | None, str | None]] = {}
    for budget, (first, caught_up, later, _) in zip(budgets, plan, strict=True):
        persister = Persister(plain)
        for kind, tid, data in first:
            persister.persist(budget, kind, tid, data)
        if caught_up:
            Projector(plain).catch_up(budget)
        for kind, tid, data in later:
            persister.persist(budget, kind, tid, data)
        before[budget] = (plain.pointer(budget), plain.head(budget))
    recording, client = recording_store(ddb_settings, budgets)
    client.doomed = {b for b, (*_, doomed) in zip(budgets, plan, strict=True) if doomed}
    client.unprocessed = unprocessed

    outcomes = {d.item: d for d in catch_up_budgets(recording, budgets, keep, workers=workers)}

    assert sorted(outcomes) == sorted(budgets)
    calls = client.per_budget()
    for budget in budgets:
        pointer, head = before[budget]
        is_behind = head is not None and (pointer is None or pointer < head)
        done = outcomes[budget]
        if not is_behind:
            assert budget not in calls  # skipped: nothing but its share of the position read
            assert done.error is None and done.value is not None
            assert plain.pointer(budget) == pointer
        elif budget in client.doomed:
            assert done.error is not None and "AccessDenied" in str(done.error)
            assert plain.pointer(budget) == pointer  # nothing half-applied
        else:
            assert done.error is None and done.value is not None and done.value.was_behind
            assert plain.pointer(budget) == head
            assert_matches_fold(plain, budget)


@settings(max_examples=10)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(min_value=0, max_value=5), max_size=6),  # budgets written
            st.sets(st.integers(min_value=0, max_value=5)),  # budgets whose steps fail
            st.booleans(),  # the retry queue is down
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from([1, 4]),
)
def test_checkpoint_rule_holds_with_the_batch_wide_catch_up(
    ddb_settings: Settings, script: list[tuple[list[int], set[int], bool]], concurrency: int
) -> None:
    """As `test_pool`'s rule test, but the catch-ups are real: each record's event is
    persisted, the processor catches budgets up through `stream_catch_up_all` and steps of
    failing budgets are refused by the server."""
    names = [new_budget() for _ in range(6)]
    recording, client = recording_store(ddb_settings, names)
    persister = Persister(Store.from_settings(aws.dynamodb(ddb_settings), ddb_settings))
    queue = Queue()
    processor = BudgetRecordProcessor(
        queue=queue, catch_up_all=stream_catch_up_all(recording, keep, workers=concurrency)
    )
    owed: set[str] = set()
    sequence = 0
    for written, failing, queue_down in script:
        client.doomed = {names[i] for i in failing}
        queue.fail, queue.items = queue_down, []
        records = []
        for i in written:
            persister.persist(names[i], "TransactionCreated", f"t{sequence}", CREATE_T)
            sequence += 1
            records.append(rec(names[i], str(sequence)))
        cp = FakeCheckpointer()
        processor.process_records(Batch(records, cp))
        named = owed | {r for r in (names[i] for i in written)}
        behind = {b for b in named if recording.pointer(b) != recording.head(b)}
        handled = (named - behind) | set(queue.items)
        owed = named - handled
        assert set(processor.pending) == owed
        assert behind <= client.doomed
        if records:
            assert cp.taken == ([] if owed else [records[-1].sequence_number])


def test_position_reads_run_ahead_of_the_catch_ups_several_at_once(
    ddb_settings: Settings, store: Store
) -> None:
    """A replay of an applied stream is nothing but position reads: issued one after another,
    200 current budgets cost four round trips in sequence. With workers, up to
    POSITION_READS_AHEAD of them are under way at once (the first ones meet at a barrier that
    only concurrent reads pass), in the same number of calls, each budget answered once."""
    budgets = [new_budget() for _ in range(200)]
    for budget in budgets:
        history(store, budget, 2)
        Projector(store).catch_up(budget)
    client = MeetingReads(aws.dynamodb(ddb_settings), budgets, meet=POSITION_READS_AHEAD)
    recording = Store(client, ddb_settings.events_table, ddb_settings.projections_table)  # type: ignore[arg-type]

    outcomes = list(catch_up_budgets(recording, budgets, keep, workers=16))

    assert not client.barrier.broken, "position reads ran one after another"
    assert sorted(d.item for d in outcomes) == sorted(budgets)
    assert all(d.error is None and d.value is not None and d.value.applied == 0 for d in outcomes)
    assert client.per_budget() == {POSITIONS: Counter({"BatchGetItem": 4})}
