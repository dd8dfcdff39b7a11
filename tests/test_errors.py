"""Classification of botocore failures decides recovery: make it explicit."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from worker.engine.failures import Outcome, cancellation_codes, classify


def client_error(code: str, status: int = 400, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, object] = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "write", "read"),
    [
        (
            client_error("ProvisionedThroughputExceededException"),
            Outcome.RETRYABLE,
            Outcome.RETRYABLE,
        ),
        (client_error("ThrottlingException"), Outcome.RETRYABLE, Outcome.RETRYABLE),
        (
            client_error("TransactionCanceledException", reasons=["None", "TransactionConflict"]),
            Outcome.RETRYABLE,
            Outcome.RETRYABLE,
        ),
        (
            client_error(
                "TransactionCanceledException", reasons=["ConditionalCheckFailed", "None"]
            ),
            Outcome.DEFINITE,
            Outcome.DEFINITE,
        ),
        (client_error("TransactionInProgressException"), Outcome.AMBIGUOUS, Outcome.AMBIGUOUS),
        (client_error("InternalServerError", 500), Outcome.AMBIGUOUS, Outcome.RETRYABLE),
        (client_error("ValidationException"), Outcome.DEFINITE, Outcome.DEFINITE),
        (client_error("ResourceNotFoundException"), Outcome.DEFINITE, Outcome.DEFINITE),
        (EndpointConnectionError(endpoint_url="http://x"), Outcome.RETRYABLE, Outcome.RETRYABLE),
        (ReadTimeoutError(endpoint_url="http://x"), Outcome.AMBIGUOUS, Outcome.RETRYABLE),
        (ConnectionClosedError(endpoint_url="http://x"), Outcome.AMBIGUOUS, Outcome.RETRYABLE),
        (ValueError("a bug"), Outcome.DEFINITE, Outcome.DEFINITE),
    ],
)
def test_classification(exc: Exception, write: Outcome, read: Outcome) -> None:
    assert classify(exc, is_write=True) is write
    assert classify(exc, is_write=False) is read


def test_cancellation_codes_from_message_when_reasons_absent() -> None:
    exc = ClientError(
        {
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for "
                "specific reasons [None, ConditionalCheckFailed]",
            }
        },
        "TransactWriteItems",
    )
    assert cancellation_codes(exc) == ["None", "ConditionalCheckFailed"]
