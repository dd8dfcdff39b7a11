"""The Python API for the app: persist events exactly once, read validated projections.

The app that records a user's changes and shows their budget calls this module (re-exported
from `worker`); the stream worker keeps the projections current in the background. One object,
`BudgetWorker`, built from `Settings` (and optionally a boto3 DynamoDB client the app already
has), offers one call per operation:

- `persist` stores one event exactly once (I1, I5). On an unknown outcome it raises
  `PersistFailed` carrying the id to retry with; retrying with it can never store the intent
  twice.
- `transactions` is the validated read (I7): current as of the head, or `StaleProjection`.
- `snapshots` reads the monthly snapshots and says which months may be out of date.
- `catch_up` projects a budget up to its head now, without waiting for the stream.

Every DynamoDB failure that survives the retries surfaces as an `InfrastructureError` (raised
`from` the botocore error), so a caller handles three families of errors and nothing from
botocore. The classes these calls are built on (`Persister`, `Projector`, `Store`, ...) stay
available in `worker.engine` for callers that inject their own clock, backoff or randomness, as
the tests and the simulation do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from worker.config import Settings
from worker.engine import aws
from worker.engine.failures import error_code
from worker.engine.persist import Persister, PersistResult, PersistStatus
from worker.engine.projector import CatchUpResult, Projector
from worker.engine.reads import Store
from worker.engine.snapshots import Rebuilder, SnapshotEntry, SnapshotsView, read_snapshots
from worker.engine.tables import CreateResult, create_tables
from worker.engine.validated_read import TransactionsView, read_transactions
from worker.errors import BudgetWorkerError, InfrastructureError
from worker.model.events import EventType
from worker.model.fold import Transaction
from worker.model.snapshot_math import MonthSnapshot

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "BudgetWorker",
    "CatchUpResult",
    "CreateResult",
    "EventType",
    "MonthSnapshot",
    "PersistResult",
    "PersistStatus",
    "Settings",
    "SnapshotEntry",
    "SnapshotsView",
    "Transaction",
    "TransactionsView",
]

P = ParamSpec("P")
R = TypeVar("R")


def _infrastructure_errors(call: Callable[P, R]) -> Callable[P, R]:
    """Let the library's own errors through and wrap any botocore failure that escaped the
    retries in one InfrastructureError, so callers never need to import botocore."""

    @functools.wraps(call)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return call(*args, **kwargs)
        except BudgetWorkerError:
            raise
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                message = "a table is missing: create the tables first (BudgetWorker.create_tables)"
            else:
                message = f"DynamoDB error {code}: {exc}"
            raise InfrastructureError(message) from exc
        except BotoCoreError as exc:
            raise InfrastructureError(f"cannot reach DynamoDB: {exc}") from exc

    return wrapper


@dataclass(slots=True)
class BudgetWorker:
    """The facade an application constructs once and shares (it is thread-safe: it holds one
    boto3 client, and boto3 clients are).

    Args:
        settings: table names, region, endpoints and timeouts. Defaults to `Settings()`;
            `BudgetWorker.from_env()` reads them from the environment instead.
        client: a DynamoDB client to reuse. Defaults to one configured from `settings`
            (botocore's standard retry mode, short timeouts).

    Examples:
        >>> worker = BudgetWorker.from_env()                      # doctest: +SKIP
        >>> worker.persist("household", "TransactionCreated", "t1",
        ...                {"date": "2026-11-02", "amount": -4550,
        ...                 "account": "card", "category": "groceries"})   # doctest: +SKIP
    """

    settings: Settings = field(default_factory=Settings)
    client: DynamoDBClient | None = None
    store: Store = field(init=False)

    def __post_init__(self) -> None:
        client = self.client if self.client is not None else aws.dynamodb(self.settings)
        self.client = client
        self.store = Store.from_settings(client, self.settings)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, client: DynamoDBClient | None = None
    ) -> BudgetWorker:
        """Build from the environment (`AWS_REGION`, `AWS_ENDPOINT_URL*`, `BUDGET_*`), or from
        `env` if given: the same variables the `budget-worker` command reads."""
        return cls(Settings.from_env(env), client)

    @_infrastructure_errors
    def create_tables(self) -> CreateResult:
        """Create the events and projections tables if absent and wait until they are active.

        Idempotent: tables that exist are reported in `existing` and left alone.
        """
        assert self.client is not None  # set in __post_init__
        return create_tables(self.client, self.settings)

    @_infrastructure_errors
    def persist(
        self,
        budget: str,
        event_type: EventType | str,
        transaction_id: str,
        data: Mapping[str, Any] | None = None,
        *,
        event_id: str | None = None,
    ) -> PersistResult:
        """Persist one event exactly once (I1, I5).

        Args:
            budget: the budget id.
            event_type: `TransactionCreated`, `TransactionUpdated` or `TransactionDeleted`.
            transaction_id: the transaction the event is about.
            data: the transaction's fields (all required ones for a create, a non-empty subset
                for an update, none for a delete).
            event_id: the ULID idempotency key of this intent. Omit it for a new intent (one
                is generated); pass `PersistFailed.retry_event_id` to retry an intent.

        Returns:
            `PersistResult` whose `status` is `created`, `duplicate` (this intent was already
            stored: success) or `reassigned` (the id was behind the budget's head, so the event
            was stored under a fresh id above it; `requested_event_id` keeps the one asked for).

        Raises:
            InvalidInput: the event is malformed; nothing was written.
            EventConflict: `event_id` already holds a different event; nothing was written.
            PersistFailed: DynamoDB kept failing. If `outcome_unknown`, an attempt may have
                been stored: retry with `retry_event_id`, which reports `duplicate` if so.
        """
        return Persister(self.store).persist(
            budget,
            str(event_type),
            transaction_id,
            dict(data) if data is not None else None,
            event_id,
        )

    @_infrastructure_errors
    def transactions(self, budget: str, *, catch_up: bool = True) -> TransactionsView:
        """The budget's transactions, provably current as of its head (I7).

        The pointer is read before and after the query; both must equal the head. If they do
        not, the budget is caught up (unless `catch_up=False`) and read again.

        Returns:
            `TransactionsView` with `as_of_event` (the head it is current as of) and the
            transactions sorted by date, then id.

        Raises:
            StaleProjection: still behind after catching up (or at once with
                `catch_up=False`); names the pointer and the head.
            InfrastructureError: DynamoDB kept failing.
        """
        projector = Projector(self.store) if catch_up else None
        return read_transactions(self.store, budget, projector=projector)

    @_infrastructure_errors
    def snapshots(self, budget: str, *, rebuild: bool = False) -> SnapshotsView:
        """Monthly snapshots from the earliest to the latest month holding a transaction.

        Months listed in `dirty_months` (and every later one) may be out of date; each entry's
        `fresh` says whether it is known current. With `rebuild=True` dirty months are rebuilt
        first (the stream worker also does this after every catch-up).

        Raises:
            InfrastructureError: DynamoDB kept failing.
        """
        if rebuild:
            Rebuilder(self.store).rebuild(budget)
        return read_snapshots(self.store, budget)

    @_infrastructure_errors
    def catch_up(self, budget: str) -> CatchUpResult:
        """Project the budget's events up to its head now (I2-I4, I6).

        Safe to run at any time and concurrently with the stream worker: every step is a
        conditional transaction, so a racing projector's step is never applied twice.

        Returns:
            `CatchUpResult` with the events applied and rejected by this call, and the pointer
            and head at the end.

        Raises:
            InfrastructureError: DynamoDB kept failing; what committed before stays committed.
        """
        return Projector(self.store).catch_up(budget)
