"""An AWS Lambda handler (API Gateway proxy integration) over budget-worker's Python API."""

from __future__ import annotations

import json
from typing import Any

from worker import (
    BudgetWorker,
    EventConflict,
    InfrastructureError,
    InvalidInput,
    PersistFailed,
    StaleProjection,
)

# One facade per container, reused across invocations (it holds one thread-safe client).
budgets = BudgetWorker.from_env()


def respond(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps(body)}


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    budget = event["pathParameters"]["budget"]
    if event["httpMethod"] == "POST":  # POST /budgets/{budget}/events
        body = json.loads(event.get("body") or "{}")
        try:
            result = budgets.persist(
                budget,
                body.get("type", ""),
                body.get("transaction_id", ""),
                body.get("data"),
                event_id=body.get("event_id"),  # the client's idempotency key, if it has one
            )
        except EventConflict as exc:  # that id holds another event: nothing was written
            return respond(409, {"error": str(exc)})
        except InvalidInput as exc:  # bad input: nothing was written
            return respond(400, {"error": str(exc)})
        except PersistFailed as exc:  # retrying with retry_event_id is always safe
            return respond(503, {"error": str(exc), "retry_event_id": exc.retry_event_id})
        return respond(201 if result.status == "created" else 200, result.as_json())
    try:  # GET /budgets/{budget}/transactions
        view = budgets.transactions(budget)
    except StaleProjection as exc:
        return respond(503, {"error": str(exc), "pointer": exc.pointer, "head": exc.head})
    except InfrastructureError as exc:
        return respond(503, {"error": str(exc)})
    return respond(200, view.as_json())
