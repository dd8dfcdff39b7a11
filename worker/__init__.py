"""budget-worker: keeps a budget app's DynamoDB projections correct when every call can fail.

The names an application uses are re-exported here (see `worker.api` and docs/API.md)::

    from worker import BudgetWorker, PersistFailed, StaleProjection

They are loaded on first use, so importing a lower layer (say `worker.model.fold`, which is
pure) does not load the AWS SDK. Everything not listed in `__all__` is internal: the layer
subpackages (`model`, `engine`, `stream`, `local`, `proof`) may change without notice.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from worker import errors as _errors  # pure: loading it costs nothing

__version__ = "0.1.0"

if TYPE_CHECKING:
    from worker.api import (
        BudgetWorker,
        CatchUpResult,
        CreateResult,
        EventType,
        MonthSnapshot,
        PersistResult,
        PersistStatus,
        Settings,
        SnapshotEntry,
        SnapshotsView,
        Transaction,
        TransactionsView,
    )
    from worker.errors import (
        BudgetWorkerError,
        EventConflict,
        InfrastructureError,
        InvalidInput,
        PersistFailed,
        StaleProjection,
    )

__all__ = [
    "BudgetWorker",
    "BudgetWorkerError",
    "CatchUpResult",
    "CreateResult",
    "EventConflict",
    "EventType",
    "InfrastructureError",
    "InvalidInput",
    "MonthSnapshot",
    "PersistFailed",
    "PersistResult",
    "PersistStatus",
    "Settings",
    "SnapshotEntry",
    "SnapshotsView",
    "StaleProjection",
    "Transaction",
    "TransactionsView",
    "__version__",
]
_ERRORS = frozenset(_errors.__all__)


def __getattr__(name: str) -> Any:
    if name in _ERRORS:
        return getattr(import_module("worker.errors"), name)
    if name in __all__:
        return getattr(import_module("worker.api"), name)
    raise AttributeError(f"module 'worker' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
