"""Reads of the events and projections tables.

Every read that feeds a decision is strongly consistent: the projector and the validated read
reason about "what is committed now", which eventually consistent reads cannot tell.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from worker.config import Settings
from worker.engine.backoff import Backoff, retry_read
from worker.errors import InfrastructureError
from worker.model import layout
from worker.model.events import Event
from worker.model.fold import Transaction
from worker.model.layout import Item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EVENT_PAGE = 100
BATCH_GET_KEYS = 100  # DynamoDB's limit per BatchGetItem
POSITIONS_PER_CALL = BATCH_GET_KEYS // 2  # a pointer and a head per budget


@dataclass(frozen=True, slots=True)
class ItemState:
    """A transaction item as stored: the live transaction (None if absent or deleted) and the
    last event that wrote it (None if the item never existed)."""

    transaction: Transaction | None
    last_event_id: str | None


@dataclass(frozen=True, slots=True)
class Position:
    """A budget's pointer (last event applied) and head (last event persisted), as read."""

    pointer: str | None
    head: str | None

    @property
    def current(self) -> bool:
        """Nothing to apply: no event persisted, or the pointer at (or past) the head read."""
        return self.head is None or (self.pointer is not None and self.pointer >= self.head)


@dataclass(slots=True)
class Store:
    """The DynamoDB client and table names every read and write goes through."""

    client: DynamoDBClient
    events_table: str
    projections_table: str

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: Settings) -> Store:
        return cls(client, settings.events_table, settings.projections_table)

    # -- single items -----------------------------------------------------------------------

    def item(self, table: str, budget: str, sort_key: str) -> Item | None:
        response = retry_read(
            f"GetItem {table} {budget}/{sort_key}",
            lambda: self.client.get_item(
                TableName=table, Key=layout.key(budget, sort_key), ConsistentRead=True
            ),
        )
        return response.get("Item")

    def head(self, budget: str) -> str | None:
        item = self.item(self.events_table, budget, layout.HEAD_SK)
        return layout.string_attr(item, layout.LAST_EVENT_ID)

    def pointer(self, budget: str) -> str | None:
        item = self.item(self.projections_table, budget, layout.POINTER_SK)
        return layout.string_attr(item, layout.LAST_EVENT_ID)

    def event(self, budget: str, event_id: str) -> Event | None:
        item = self.item(self.events_table, budget, layout.event_sk(event_id))
        return layout.event_from_item(item) if item else None

    def transaction_state(self, budget: str, transaction_id: str) -> ItemState:
        item = self.item(self.projections_table, budget, layout.txn_sk(transaction_id))
        if item is None:
            return ItemState(None, None)
        return ItemState(
            layout.transaction_from_item(item), layout.string_attr(item, layout.LAST_EVENT_ID)
        )

    def items(self, table: str, keys: Iterable[tuple[str, str]]) -> Iterator[Item]:
        """The items at several (budget, sort key) keys of `table` that exist, read strongly
        consistently, 100 keys per BatchGetItem (DynamoDB's limit): a batched step touches up
        to a hundred transactions, and one GetItem each cost more than the step's own write."""
        for _, item in self.items_of((table, budget, sort_key) for budget, sort_key in keys):
            yield item

    def items_of(self, keys: Iterable[tuple[str, str, str]]) -> Iterator[tuple[str, Item]]:
        """(table, item) for each (table, budget, sort key) that exists, read strongly
        consistently: one BatchGetItem per 100 keys, whatever tables they belong to (a
        BatchGetItem may name several). Keys left unprocessed (the server's capacity, not an
        error) are asked again with backoff; still unprocessed after the backoff's attempts,
        the call fails with InfrastructureError (callers treat every key of it as unread)."""
        wanted = [(table, layout.key(budget, sort_key)) for table, budget, sort_key in keys]
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            chunk: dict[str, list[Any]] = {}
            for table, key in wanted[start : start + BATCH_GET_KEYS]:
                chunk.setdefault(table, []).append(key)
            what = f"BatchGetItem {' '.join(sorted(chunk))}"
            request: Any = {
                table: {"Keys": table_keys, "ConsistentRead": True}
                for table, table_keys in chunk.items()
            }
            delays = Backoff().delays()
            while request:
                page = retry_read(what, partial(self.client.batch_get_item, RequestItems=request))
                for table, found in page["Responses"].items():
                    for item in found:
                        yield table, item
                request = dict(page.get("UnprocessedKeys") or {}) or None
                if request:
                    delay = next(delays, None)
                    if delay is None:
                        raise InfrastructureError(f"{what}: keys still unprocessed after retries")
                    time.sleep(delay)

    def live_transactions(
        self, budget: str, transaction_ids: Iterable[str]
    ) -> dict[str, Transaction | None]:
        """The live state of several transactions (None: absent or deleted)."""
        found: dict[str, Transaction | None] = dict.fromkeys(transaction_ids)
        keys = [(budget, layout.txn_sk(tid)) for tid in found]
        for item in self.items(self.projections_table, keys):
            tid = item[layout.SK]["S"][len(layout.TXN_PREFIX) :]
            found[tid] = layout.transaction_from_item(item)
        return found

    def pointers(self, budgets: Iterable[str]) -> dict[str, str | None]:
        """Several budgets' pointers (None: nothing projected yet)."""
        found: dict[str, str | None] = dict.fromkeys(budgets)
        keys = [(budget, layout.POINTER_SK) for budget in found]
        for item in self.items(self.projections_table, keys):
            found[item[layout.PK]["S"]] = layout.string_attr(item, layout.LAST_EVENT_ID)
        return found

    def positions(self, budgets: Iterable[str]) -> dict[str, Position]:
        """Several budgets' pointers and heads, read together: one BatchGetItem per 50
        budgets (two keys each, in two tables), where reading them one by one costs two
        sequential GetItems per budget. The two reads of one budget are not ordered (a
        BatchGetItem is not a snapshot), so a pointer may be read after a step that followed
        the head read: `Position.current` is then true, which it is (every event up to the
        head read is applied)."""
        pointers: dict[str, str | None] = dict.fromkeys(budgets)
        heads: dict[str, str | None] = dict.fromkeys(pointers)
        keys = [
            key
            for budget in pointers
            for key in (
                (self.projections_table, budget, layout.POINTER_SK),
                (self.events_table, budget, layout.HEAD_SK),
            )
        ]
        for _, item in self.items_of(keys):
            found = pointers if item[layout.SK]["S"] == layout.POINTER_SK else heads
            found[item[layout.PK]["S"]] = layout.string_attr(item, layout.LAST_EVENT_ID)
        return {budget: Position(pointers[budget], heads[budget]) for budget in pointers}

    # -- queries ----------------------------------------------------------------------------

    def pages(
        self, what: str, operation: Callable[..., Any], **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """Every page of a Query or Scan, each read with retries."""
        start: dict[str, Any] | None = None
        while True:
            args = dict(kwargs)
            if start:
                args["ExclusiveStartKey"] = start
            page: dict[str, Any] = retry_read(what, lambda args=args: operation(**args))  # type: ignore[misc]
            yield page
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def query(self, what: str, **kwargs: Any) -> Iterator[Item]:
        for page in self.pages(what, self.client.query, **kwargs):
            yield from page.get("Items", [])

    def prefix_items(self, table: str, budget: str, prefix: str) -> Iterator[Item]:
        """Every item of `budget` whose sort key starts with `prefix`, strongly consistent."""
        return self.query(
            f"Query {table} {budget}/{prefix}*",
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": layout.s(budget), ":prefix": layout.s(prefix)},
            ConsistentRead=True,
        )

    def _event_range(self, budget: str, after: str | None, upto: str) -> dict[str, Any]:
        """Query arguments for events from `after` (inclusive: BETWEEN) to `upto`."""
        low = layout.event_sk(after) if after else layout.EVENT_PREFIX
        return {
            "TableName": self.events_table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": layout.s(budget),
                ":low": layout.s(low),
                ":high": layout.s(layout.event_sk(upto)),
            },
            "ConsistentRead": True,
        }

    def events_page(
        self, budget: str, after: str | None, upto: str, limit: int = EVENT_PAGE
    ) -> list[Event]:
        """Events with `after` < id <= `upto`, in ULID order, at most `limit` of them."""
        response = retry_read(
            f"Query events {budget} after {after}",
            lambda: self.client.query(**self._event_range(budget, after, upto), Limit=limit + 1),
        )
        events = [layout.event_from_item(i) for i in response.get("Items", [])]
        return [e for e in events if after is None or e.event_id > after][:limit]

    def events(self, budget: str) -> list[Event]:
        return [
            layout.event_from_item(i)
            for i in self.prefix_items(self.events_table, budget, layout.EVENT_PREFIX)
        ]

    def count_events_after(self, budget: str, after: str | None, upto: str | None) -> int:
        """How many events lie in (after, upto]: the projection's lag, counted server-side."""
        if upto is None or (after is not None and after >= upto):
            return 0
        pages = self.pages(
            f"Count events {budget}",
            self.client.query,
            **self._event_range(budget, after, upto),
            Select="COUNT",
        )
        total = sum(int(page.get("Count", 0)) for page in pages)
        # BETWEEN is inclusive: the pointer's own event is not behind.
        return max(0, total - (1 if after is not None else 0))

    def transactions(self, budget: str) -> list[Transaction]:
        live = (
            layout.transaction_from_item(i)
            for i in self.prefix_items(self.projections_table, budget, layout.TXN_PREFIX)
        )
        return sorted((t for t in live if t is not None), key=lambda t: (t.date, t.transaction_id))

    def rejected(self, budget: str) -> list[tuple[str, str]]:
        return [
            (i["event_id"]["S"], i["reason"]["S"])
            for i in self.prefix_items(self.projections_table, budget, layout.REJECTED_PREFIX)
        ]

    def dirty_months(self, budget: str) -> list[str]:
        return [
            i[layout.SK]["S"][len(layout.DIRTY_PREFIX) :]
            for i in self.prefix_items(self.projections_table, budget, layout.DIRTY_PREFIX)
        ]

    def budgets(self, buckets: Iterable[str] | None = None) -> Iterator[str]:
        """Every budget with at least one persisted event, bucket by bucket, page by page.

        Reads only the sparse budgets index (one key per budget), never an event item, and
        holds one page at a time, so listing millions of budgets costs memory for one page.
        The index is eventually consistent: a budget whose first event is a moment old may be
        missing, which is harmless for its callers (its stream record is on its way).
        """
        for bucket in layout.all_buckets() if buckets is None else buckets:
            for item in self.query(
                f"Query budgets bucket {bucket}",
                TableName=self.events_table,
                IndexName=layout.BUDGETS_INDEX,
                KeyConditionExpression="#b = :b",
                ExpressionAttributeNames={"#b": layout.BUCKET},
                ExpressionAttributeValues={":b": layout.s(bucket)},
            ):
                yield item[layout.PK]["S"]
