"""Many budgets caught up at once: the one path for every caller that is handed a set of
budgets (the stream's record processor, under KCL or the local driver, and the sweep).

Why a batch-wide function and not `Projector.catch_up` per budget: on AWS a call costs several
milliseconds and a transactional write tens, and a budget handled alone cost six sequential
round trips whatever its backlog (pointer, head, the events page, its transactions, the step,
the head again). Here the pointers and heads of all the budgets are read together, 50 budgets
per BatchGetItem (`Store.positions`: 100 keys, unprocessed keys retried), so

- a budget already current costs nothing more than its share of that read (a replay of an
  applied stream costs about one call per 50 budgets; with workers, up to
  `POSITION_READS_AHEAD` of those reads are under way at once, ahead of the catch-ups, so a
  replay does not pay them one round trip after another);
- a budget that is behind costs three sequential calls on a pool thread (its events page, one
  BatchGetItem of the transactions the run touches, the step) plus what a longer backlog needs
  (one more page per 100 events, one more step per `batch` events).

Nothing about correctness changes: the position read is strongly consistent and every step is
conditional on the pointer it was built from (I2), so a position that went stale while the
budget waited for a thread costs one lost step and a re-read, never a wrong write. A head read
that is older than the truth only means fewer events applied; the records this catch-up answers
for were delivered before the read, so their events are at or below it (the checkpoint rule's
premise). With `follow_head=False` (the stream) the head is not re-read at the end: every event
persisted after the read has its own stream record, which names the budget again.

A failed position read fails every budget of its chunk; a failed catch-up fails its budget
alone. Either way the failure is returned with its budget, never raised, so the caller decides
what failure means (the record processor keeps the budget pending or queues it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from itertools import islice
from typing import TypeVar

from worker.engine import pool
from worker.engine.pool import Done
from worker.engine.projector import CatchUpResult, Projector
from worker.engine.reads import POSITIONS_PER_CALL, Position, Store

R = TypeVar("R")

# Position reads under way at once, ahead of the catch-ups they feed (`pool.ahead`): 4 x 50
# budgets read while the pool works through the budgets read before. A replay of an applied
# stream is nothing but these reads; more than a few in flight only queues at the server.
POSITION_READS_AHEAD = 4


def catch_up_budgets(
    store: Store,
    budgets: Iterable[str],
    then: Callable[[CatchUpResult], R],
    *,
    projector: Projector | None = None,
    workers: int = 1,
    follow_head: bool = False,
) -> Iterator[Done[str, R]]:
    """Catch up each budget of `budgets`, then `then` its result, yielding one outcome per
    budget (its value, or the exception it met) as each completes.

    Args:
        store: where positions are read (the projector's store by default).
        budgets: a batch's budgets (a collection: duplicates are handled once), or a listing
            (an iterator: read lazily, one chunk at a time, whatever its length).
        then: what to do after a budget's catch-up, on the same pool thread (mark or rebuild
            its snapshots; the identity to keep the result). Also called for budgets found
            current: a reader or a worker that died may have left dirty markers behind.
        projector: the catch-up loop to use (its batch size, backoff, seams).
        workers: budgets handled at once (`BUDGET_CONCURRENCY`); 1 runs in order, inline.
        follow_head: re-read the head after catching up (the sweep: no later record may name
            the budget); False on the stream path (module docstring).
    """
    projector = projector if projector is not None else Projector(store)

    def chunks() -> Iterator[list[str]]:
        # A batch's budgets are de-duplicated; a listing (an iterator) is distinct already and
        # may be huge, so it is taken as given, one chunk at a time.
        source = iter(dict.fromkeys(budgets) if isinstance(budgets, Collection) else budgets)
        while chunk := list(islice(source, POSITIONS_PER_CALL)):
            yield chunk

    def positioned() -> Iterator[tuple[str, Position | Exception]]:
        reads = min(workers, POSITION_READS_AHEAD)
        for read in pool.ahead(store.positions, chunks(), reads):
            if (exc := read.error) is not None:  # every budget of the chunk is unread: each fails
                for budget in read.item:
                    yield budget, exc
                continue
            assert read.value is not None
            for budget in read.item:
                yield budget, read.value[budget]

    def handle(entry: tuple[str, Position | Exception]) -> R:
        budget, position = entry
        if isinstance(position, Exception):
            raise position
        if position.current:
            result = CatchUpResult(budget, pointer=position.pointer, head=position.head)
        else:
            result = projector.catch_up_from(
                budget, position.pointer, position.head, follow_head=follow_head
            )
        return then(result)

    for done in pool.each(handle, positioned(), workers):
        yield Done(done.item[0], done.value, done.error)


def keep(result: CatchUpResult) -> CatchUpResult:
    """The `then` of a caller that wants the catch-up's result only."""
    return result
