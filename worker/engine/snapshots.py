"""Monthly snapshots: the rebuilder that turns dirty markers into snapshots, and their reader.

Decoupled from projection: the projector only leaves `DIRTY#<month>` markers (I4) in the same
transaction as each step; this module never writes transactions or the pointer.

A rebuild is correct without locks because of three rules:
- it reads the pointer before and after its reads and writes nothing if the pointer moved, so
  every snapshot it writes is the exact computation at one pointer (`as_of_event`);
- a snapshot is only written over one with an older (or equal) `as_of_event`, so a slow
  rebuilder can never overwrite a newer rebuild's snapshot; once one of its writes is refused
  so, it writes no later month and clears no marker (the newer rebuild, or the next one, owns
  them);
- a month outside the live range (stale, or dirty but emptied) is never deleted but replaced
  by a tombstone carrying the rebuild's pointer, so a slow rebuild that still saw the month
  in range cannot create it again through `attribute_not_exists` (a stale snapshot with no
  marker, presented fresh once a later step brings the month back: seeds 500163, 500183);
- a marker is deleted only if it still carries the event id this rebuild read, so an
  invalidation that lands during the rebuild survives it (DESIGN, Snapshots).
Months after a dirty month are recomputed too (their running balances depend on it). Readers
report a snapshot as fresh only if no marker exists for its month or any earlier month.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from worker import logs
from worker.engine.backoff import retry_read, retry_write
from worker.engine.failures import CONDITIONAL_CHECK_FAILED, error_code
from worker.engine.reads import Store
from worker.errors import InfrastructureError
from worker.model import layout
from worker.model.fold import Transaction
from worker.model.snapshot_math import (
    MonthSnapshot,
    month_snapshot,
    months_between,
    previous_month,
)

log = logs.get(__name__)


TOMBSTONE = "tombstone"  # a month no longer in the live range, as of `as_of_event`


def snap_sk(month: str) -> str:
    return layout.SNAP_PREFIX + month


def _number_map(values: Mapping[str, int]) -> dict[str, Any]:
    return {"M": {k: layout.n(v) for k, v in sorted(values.items())}}


def snapshot_item(budget: str, snapshot: MonthSnapshot) -> dict[str, Any]:
    item: dict[str, Any] = {
        **layout.key(budget, snap_sk(snapshot.month)),
        "month": layout.s(snapshot.month),
        "income": layout.n(snapshot.income),
        "expenses": layout.n(snapshot.expenses),
        "net": layout.n(snapshot.net),
        "by_category": _number_map(snapshot.by_category),
        "balances": _number_map(snapshot.balances),
        "transaction_count": layout.n(snapshot.transaction_count),
    }
    if snapshot.as_of_event is not None:
        item["as_of_event"] = layout.s(snapshot.as_of_event)
    return item


def snapshot_from_item(item: Mapping[str, Any]) -> MonthSnapshot:
    def numbers(name: str) -> dict[str, int]:
        return {k: int(v["N"]) for k, v in item.get(name, {}).get("M", {}).items()}

    return MonthSnapshot(
        month=item["month"]["S"],
        income=int(item["income"]["N"]),
        expenses=int(item["expenses"]["N"]),
        net=int(item["net"]["N"]),
        by_category=numbers("by_category"),
        balances=numbers("balances"),
        transaction_count=int(item["transaction_count"]["N"]),
        as_of_event=item.get("as_of_event", {}).get("S"),
    )


@dataclass(slots=True)
class SnapshotStore:
    """Snapshot-specific reads: markers, stored snapshots, and month queries on the index."""

    store: Store

    @property
    def table(self) -> str:
        return self.store.projections_table

    def markers(self, budget: str) -> dict[str, str]:
        """Dirty months and the event id each marker carries."""
        return {
            i[layout.SK]["S"][len(layout.DIRTY_PREFIX) :]: i["event_id"]["S"]
            for i in self.store.prefix_items(self.table, budget, layout.DIRTY_PREFIX)
        }

    def snapshots(self, budget: str) -> dict[str, MonthSnapshot]:
        items = self.store.prefix_items(self.table, budget, layout.SNAP_PREFIX)
        return {
            s.month: s for s in map(snapshot_from_item, (i for i in items if TOMBSTONE not in i))
        }

    def _by_date(
        self, budget: str, condition: str, values: dict[str, Any], **extra: Any
    ) -> Iterator[dict[str, Any]]:
        return self.store.query(
            f"Query {budget} by date",
            TableName=self.table,
            IndexName=layout.BY_DATE_INDEX,
            KeyConditionExpression=f"pk = :pk AND {condition}",
            ExpressionAttributeValues={":pk": layout.s(budget), **values},
            ConsistentRead=True,
            **extra,
        )

    def month_range(self, budget: str) -> tuple[str, str] | None:
        """Earliest and latest month holding a live transaction (two one-item queries)."""
        ends = []
        for forward in (True, False):
            page = retry_read(
                f"Query month range {budget}",
                lambda forward=forward: self.store.client.query(  # type: ignore[misc]
                    TableName=self.table,
                    IndexName=layout.BY_DATE_INDEX,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": layout.s(budget)},
                    ConsistentRead=True,
                    ScanIndexForward=forward,
                    Limit=1,
                ),
            )
            items = page.get("Items", [])
            if not items:
                return None
            ends.append(items[0]["date"]["S"][:7])
        return ends[0], ends[1]

    def month_transactions(self, budget: str, month: str) -> Iterator[Transaction]:
        for item in self._by_date(
            budget, "begins_with(date_key, :m)", {":m": layout.s(month + "-")}
        ):
            txn = layout.transaction_from_item(item)
            if txn is not None:
                yield txn

    def balances_before(self, budget: str, month: str) -> dict[str, int]:
        """Closing balances of every account just before `month`, streamed (memory bounded by
        the number of accounts, not transactions)."""
        balances: dict[str, int] = {}
        for item in self._by_date(
            budget,
            "date_key < :m",
            {":m": layout.s(month)},
            ProjectionExpression="account, amount, #d",
            ExpressionAttributeNames={"#d": "date"},
        ):
            account = item["account"]["S"]
            balances[account] = balances.get(account, 0) + int(item["amount"]["N"])
        return balances


@dataclass(slots=True)
class RebuildResult:
    budget: str
    rebuilt: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    survived: list[str] = field(default_factory=list)
    as_of_event: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "rebuilt": self.rebuilt,
            "cleared": self.cleared,
            "survived": self.survived,
            "as_of_event": self.as_of_event,
        }


@dataclass(slots=True)
class Rebuilder:
    store: Store
    attempts: int = 5

    def rebuild(self, budget: str) -> RebuildResult:
        """Rebuild every dirty month (and every later one); raise InfrastructureError if the
        pointer kept moving or DynamoDB kept failing. Markers that survive stay for the next
        rebuild."""
        snaps = SnapshotStore(self.store)
        for attempt in range(1, self.attempts + 1):
            pointer = self.store.pointer(budget)
            markers = snaps.markers(budget)
            if not markers or pointer is None:
                return RebuildResult(budget, as_of_event=pointer)
            computed, stale = self._compute(snaps, budget, sorted(markers), pointer)
            if self.store.pointer(budget) != pointer:
                log.info(
                    "pointer moved during rebuild, starting over", budget=budget, attempt=attempt
                )
                continue
            result = RebuildResult(budget, as_of_event=pointer)
            for snapshot in computed:
                if not self._write(budget, snapshot, pointer):
                    return self._overtaken(result, snapshot.month, markers)
                result.rebuilt.append(snapshot.month)
            for month in stale:
                self._bury_snapshot(budget, month, pointer)
            for month, event_id in sorted(markers.items()):
                if self._clear_marker(budget, month, event_id):
                    result.cleared.append(month)
                else:
                    result.survived.append(month)
            log.info("snapshots rebuilt", **result.as_json())
            return result
        raise InfrastructureError(
            f"budget {budget!r}: snapshots not rebuilt, the pointer kept moving "
            f"({self.attempts} attempts); the markers remain"
        )

    @staticmethod
    def _overtaken(result: RebuildResult, month: str, markers: Mapping[str, str]) -> RebuildResult:
        """A newer rebuild wrote `month` first: stop, write no later month and clear no
        marker. Writing on would leave `as_of_event` decreasing month to month (this
        rebuild's older pointer after the newer one's), which readers take for a torn rebuild;
        and if the newer rebuild stopped halfway (its process died), clearing the markers it
        would have cleared leaves nothing to make any rebuild repair those months, so they
        stay not fresh for good. Left in place, the markers send the next rebuild over them
        (found by the simulation, seed 300692)."""
        result.survived = sorted(markers)
        log.info("a newer rebuild overtook this one; markers left", month=month, **result.as_json())
        return result

    def _compute(
        self, snaps: SnapshotStore, budget: str, dirty: list[str], pointer: str
    ) -> tuple[list[MonthSnapshot], list[str]]:
        first_dirty = min(dirty)
        existing = snaps.snapshots(budget)
        span = snaps.month_range(budget)
        if span is None:  # no live transaction at all: every stored snapshot is stale
            return [], sorted({*existing, *dirty})
        first, last = span
        start = max(first_dirty, first)
        never_built = [m for m in months_between(first, last) if m not in existing]
        if never_built:  # e.g. an empty month that a later month's first transaction opened
            start = min(start, never_built[0])
        # Out of range: every stored snapshot, and every dirty month (emptied since a slower
        # rebuild may have seen it in range and be about to write it).
        stale = sorted({m for m in [*existing, *dirty] if m < first or m > last})
        if start > last:
            return [], stale
        before = previous_month(start)
        if start == first:
            opening: Mapping[str, int] = {}
        elif before in existing:
            opening = existing[before].balances  # earlier than every dirty month: fresh
        else:
            opening = snaps.balances_before(budget, start)
        computed = []
        for month in months_between(start, last):
            snapshot = month_snapshot(
                month, snaps.month_transactions(budget, month), opening, pointer
            )
            opening = snapshot.balances
            computed.append(snapshot)
        return computed, stale

    def _write(self, budget: str, snapshot: MonthSnapshot, pointer: str) -> bool:
        try:
            retry_write(
                f"Put snapshot {budget}/{snapshot.month}",
                lambda: self.store.client.put_item(
                    TableName=self.store.projections_table,
                    Item=snapshot_item(budget, snapshot),
                    ConditionExpression="attribute_not_exists(sk) OR as_of_event <= :p",
                    ExpressionAttributeValues={":p": layout.s(pointer)},
                ),
            )
        except ClientError as exc:
            if error_code(exc) == CONDITIONAL_CHECK_FAILED:
                return False  # a newer rebuild got there first: keep its snapshot
            raise
        return True

    def _bury_snapshot(self, budget: str, month: str, pointer: str) -> None:
        """Replace a stale month's snapshot by a tombstone at `pointer` (not a delete: a
        slower rebuild's write of the month must still find a newer `as_of_event` there)."""
        try:
            retry_write(
                f"Bury snapshot {budget}/{month}",
                lambda: self.store.client.put_item(
                    TableName=self.store.projections_table,
                    Item={
                        **layout.key(budget, snap_sk(month)),
                        "as_of_event": layout.s(pointer),
                        TOMBSTONE: {"BOOL": True},
                    },
                    ConditionExpression="as_of_event <= :p OR attribute_not_exists(sk)",
                    ExpressionAttributeValues={":p": layout.s(pointer)},
                ),
            )
        except ClientError as exc:
            if error_code(exc) != CONDITIONAL_CHECK_FAILED:
                raise

    def _clear_marker(self, budget: str, month: str, event_id: str) -> bool:
        try:
            retry_write(
                f"Delete marker {budget}/{month}",
                lambda: self.store.client.delete_item(
                    TableName=self.store.projections_table,
                    Key=layout.key(budget, layout.dirty_sk(month)),
                    ConditionExpression="event_id = :e",
                    ExpressionAttributeValues={":e": layout.s(event_id)},
                ),
            )
        except ClientError as exc:
            if error_code(exc) == CONDITIONAL_CHECK_FAILED:
                # A newer invalidation (or a racing rebuild already cleared it): keep it.
                return False
            raise
        return True


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    """One month: its snapshot (None if never built) and whether it is known current."""

    month: str
    snapshot: MonthSnapshot | None
    fresh: bool

    def as_json(self) -> dict[str, Any]:
        if self.snapshot is not None:
            body = self.snapshot.as_json()
        else:
            body = {
                "month": self.month,
                "income": None,
                "expenses": None,
                "net": None,
                "by_category": None,
                "balances": None,
                "transaction_count": None,
                "as_of_event": None,
            }
        body["fresh"] = self.fresh
        return body


@dataclass(frozen=True, slots=True)
class SnapshotsView:
    """Every month from the earliest to the latest holding a transaction, and the months
    whose dirty markers say they (and every later month) may be out of date."""

    budget: str
    dirty_months: list[str]
    entries: list[SnapshotEntry]

    def as_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "dirty_months": self.dirty_months,
            "snapshots": [e.as_json() for e in self.entries],
        }


def read_snapshots(store: Store, budget: str) -> SnapshotsView:
    """Every month from the earliest to the latest holding a transaction. The three reads go
    in the order that makes "no marker at or before the month" mean "fresh":
    - the month range first: a month is only shown if it was in range before the markers
      were read. Read last, it could take in a month that a step brought back after the
      marker read, whose stored snapshot is a leftover from before it left the range (its
      rebuild has not buried it yet) and whose new marker the reader missed: presented
      fresh while stale (found by the simulation, seed 700346);
    - markers before snapshots: a snapshot read first could be replaced and its marker
      cleared in between, and would then be presented fresh while stale."""
    snaps = SnapshotStore(store)
    span = snaps.month_range(budget)
    markers = snaps.markers(budget)
    stored = snaps.snapshots(budget)
    months = months_between(*span) if span else []
    earliest_dirty = min(markers) if markers else None
    # A finished rebuild rewrites a run of months up to the last one at one pointer, so
    # `as_of_event` never decreases month to month. A decrease means a rebuild was caught
    # halfway through its writes: the later months' running balances are not trustworthy.
    torn_from: str | None = None
    previous = ""
    for month in months:
        snapshot = stored.get(month)
        as_of = (snapshot.as_of_event or "") if snapshot else ""
        if snapshot is not None and as_of < previous:
            torn_from = month
            break
        previous = max(previous, as_of)
    entries = [
        SnapshotEntry(
            month,
            stored.get(month),
            fresh=month in stored
            and (earliest_dirty is None or month < earliest_dirty)
            and (torn_from is None or month < torn_from),
        )
        for month in months
    ]
    return SnapshotsView(budget, sorted(markers), entries)
