"""Properties of the pure fold: the oracle the DynamoDB state is compared against."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from tests.helpers import intents
from worker.model.events import Event, EventType, check_data
from worker.model.fold import ChangeKind, Projection, apply, decide, fold


def as_events(steps: list[tuple[str, str, dict[str, object]]]) -> list[Event]:
    return [
        Event(
            "b", str(ULID.from_int(i + 1)), EventType(kind), tid, check_data(EventType(kind), data)
        )
        for i, (kind, tid, data) in enumerate(steps)
    ]


@given(st.lists(intents, max_size=40))
def test_fold_tracks_existence_and_rejects_poison(
    steps: list[tuple[str, str, dict[str, object]]],
) -> None:
    state = Projection()
    alive: set[str] = set()
    for event in as_events(steps):
        state = apply(state, event)
        tid = event.transaction_id
        if event.type is EventType.CREATED:
            expect_reject = tid in alive
            alive.add(tid)
        else:
            expect_reject = tid not in alive
            if event.type is EventType.DELETED:
                alive.discard(tid)
        assert (event.event_id in state.rejected) == expect_reject
        assert state.pointer == event.event_id
    assert set(state.transactions) == alive
    for txn in state.transactions.values():
        assert txn.last_event_id <= (state.pointer or "")


@given(st.lists(intents, max_size=30))
def test_fold_ignores_input_order(steps: list[tuple[str, str, dict[str, object]]]) -> None:
    events = as_events(steps)
    assert fold(reversed(events)) == fold(events)


@given(st.lists(intents, min_size=1, max_size=30))
def test_each_change_dirties_old_and_new_month(
    steps: list[tuple[str, str, dict[str, object]]],
) -> None:
    state = Projection()
    for event in as_events(steps):
        current = state.transactions.get(event.transaction_id)
        change = decide(current, event)
        if change.kind is ChangeKind.REJECT:
            assert change.months == () or change.before == change.after
        else:
            expected = {t.month for t in (current, change.after) if t is not None}
            assert set(change.months) == expected
        state = apply(state, event)


def test_undecodable_event_is_rejected_with_its_problem() -> None:
    event = Event("b", str(ULID()), EventType.UPDATED, "t1", {}, problem="unknown event type 'X'")
    change = decide(None, event)
    assert change.kind is ChangeKind.REJECT
    assert change.reason == "unknown event type 'X'"


def test_recreate_after_delete_is_allowed() -> None:
    data = {"date": "2026-01-01", "amount": 5, "account": "a", "category": "c"}
    events = as_events(
        [
            ("TransactionCreated", "t1", data),
            ("TransactionDeleted", "t1", {}),
            ("TransactionCreated", "t1", {**data, "amount": 7}),
        ]
    )
    state = fold(events)
    assert state.transactions["t1"].amount == 7
    assert not state.rejected
