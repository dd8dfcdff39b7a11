"""How a failed DynamoDB call is classified, and the DynamoDB codes this project acts on.

- DEFINITE: the server answered and nothing changed (bad request, condition failed).
- RETRYABLE: nothing changed and trying again may work (throttling, conflicts, refused connect).
- AMBIGUOUS: the request may or may not have been applied (timeouts and dropped connections
  after the request was sent, 5xx on a write). Callers resolve it by re-reading state; every
  write in this project is conditional, so retrying the same intent is always safe.
"""

from __future__ import annotations

from enum import Enum

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)


class Outcome(Enum):
    DEFINITE = "definite"
    RETRYABLE = "retryable"
    AMBIGUOUS = "ambiguous"


# A cancellation reason (per item of a cancelled TransactWriteItems): that item's condition
# failed. Not to be confused with the error code of a failed single-item write below.
CANCELLED_BY_CONDITION = "ConditionalCheckFailed"
# The error code of a single conditional PutItem/UpdateItem/DeleteItem whose condition failed.
CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"
# A cancellation reason meaning that item was fine (another item cancelled the transaction).
ITEM_OK = "None"
TRANSACTION_CANCELED = "TransactionCanceledException"

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "SlowDown",
    }
)
# Reasons inside TransactionCanceledException that mean "nothing was written, try again".
RETRYABLE_CANCELLATION_CODES = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__


def cancellation_codes(exc: ClientError) -> list[str]:
    """The per-item codes of a cancelled transaction ("None" where that item was fine)."""
    reasons = exc.response.get("CancellationReasons")
    if reasons is None:
        # botocore puts them in the response; some servers only describe them in the message.
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if "[" in message and "]" in message:
            inner = message[message.rfind("[") + 1 : message.rfind("]")]
            return [part.strip() for part in inner.split(",")]
        return []
    return [str(r.get("Code", ITEM_OK)) for r in reasons]


def classify(exc: BaseException, *, is_write: bool) -> Outcome:
    """Decide whether a failed DynamoDB call definitely did nothing, may be retried, or is
    ambiguous (may have been applied)."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in THROTTLING_CODES or code in {
            "TransactionConflictException",
            "LimitExceededException",
        }:
            return Outcome.RETRYABLE
        if code == TRANSACTION_CANCELED:
            # A cancelled transaction wrote nothing. If any item was cancelled by a conflict or
            # throttling, the verdicts on the others are not final: trying again is right.
            codes = set(cancellation_codes(exc))
            if codes & RETRYABLE_CANCELLATION_CODES:
                return Outcome.RETRYABLE
            return Outcome.DEFINITE
        if code == "TransactionInProgressException":
            # The same ClientRequestToken is still being processed: it may yet commit.
            return Outcome.AMBIGUOUS
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if status >= 500 or code in {"InternalServerError", "ServiceUnavailable"}:
            return Outcome.AMBIGUOUS if is_write else Outcome.RETRYABLE
        return Outcome.DEFINITE
    if isinstance(
        exc, NoCredentialsError | PartialCredentialsError | NoRegionError | ParamValidationError
    ):
        return Outcome.DEFINITE  # configuration, not the network: nothing was sent
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        # The connection was never established, so the request was never sent.
        return Outcome.RETRYABLE
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError | BotoCoreError | OSError):
        return Outcome.AMBIGUOUS if is_write else Outcome.RETRYABLE
    return Outcome.DEFINITE
