"""The projection compared with its definition: what the projections table holds against the
pure fold of the event log up to the pointer. Used by the simulation after every operation and
by the tests; reads only."""

from __future__ import annotations

from collections.abc import Sequence

from worker.engine.reads import Store
from worker.model.events import Event
from worker.model.fold import Projection, fold


def projection_differences(
    store: Store, budget: str, events: Sequence[Event] | None = None
) -> tuple[Projection, list[str]]:
    """The fold up to the stored pointer, and every way the stored projection differs from
    it (empty when they agree). Pass `events` if the caller already read the log."""
    events = store.events(budget) if events is None else events
    pointer = store.pointer(budget)
    expected = fold(e for e in events if pointer is not None and e.event_id <= pointer)
    problems = []
    if expected.pointer != pointer:
        problems.append(f"pointer {pointer} is not a stored event")
    if {t.transaction_id: t for t in store.transactions(budget)} != dict(expected.transactions):
        problems.append(
            f"transactions differ from the fold at pointer {pointer} "
            "(partial step, or an event skipped or applied twice)"
        )
    if dict(store.rejected(budget)) != dict(expected.rejected):
        problems.append("rejected events differ from the fold")
    return expected, problems
