"""Seeded fault injection at the botocore layer, for tests and the simulation.

Faults are injected through the client's own event hooks, so the code under test runs exactly
as in production, with a real (DynamoDB Local) or mocked (moto) server behind it:

- `before-call` (before botocore's retry loop, nothing sent): refuse the connection, throttle,
  conflict, or answer a 5xx without the server having done anything;
- `after-call` (the server answered and committed): lose the response, so the caller sees a
  read timeout for a call that succeeded (the ambiguous case that a later retry must resolve);
- `Crash` at either point: a BaseException that no `except Exception` catches, modelling the
  process dying between two calls.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError


class Fault(Enum):
    REFUSE = "refuse"  # connection refused: nothing sent
    THROTTLE = "throttle"  # ProvisionedThroughputExceeded: nothing done
    CONFLICT = "conflict"  # TransactionCanceled(TransactionConflict): nothing done
    # TransactionCanceled with the first item in conflict and the others' conditions failed:
    # the mix a lost-but-committed attempt and its retry can produce. Nothing done.
    MIXED_CANCEL = "mixed_cancel"
    SERVER_ERROR = "server_error"  # 500 without the server having done anything
    LOSE_RESPONSE = "lose_response"  # committed, then the answer is lost
    CRASH_BEFORE = "crash_before"  # the process dies before sending
    CRASH_AFTER = "crash_after"  # the process dies after the server committed


AFTER_CALL = frozenset({Fault.LOSE_RESPONSE, Fault.CRASH_AFTER})


class Crash(BaseException):
    """The simulated process died here. Deliberately not an Exception."""


@dataclass(slots=True)
class Rule:
    """Inject `fault` into calls of `operation` ("*" for any) with `probability`, at most
    `limit` times (None: no limit), after letting the first `skip` matching calls through.

    Independent rare faults never exhaust a caller's retries, so the paths taken when
    retries run out (a budget left pending, a checkpoint held, a budget queued) would never
    run. Correlated faults do: `burst` > 1 makes one firing an outage that also fails the
    next `burst - 1` calls the rule matches; `body_contains` limits a rule to requests naming
    one thing (a budget: "throttled for a while"); `active` switches a rule on and off from
    outside (the schedule decides when the while is)."""

    operation: str
    fault: Fault
    probability: float = 1.0
    limit: int | None = 1
    skip: int = 0
    burst: int = 1
    body_contains: str | None = None
    active: bool = True
    seen: int = 0
    fired: int = 0
    remaining: int = 0  # calls of the current outage still to fail

    def matches(self, operation: str) -> bool:
        return self.operation in ("*", operation)


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body


@dataclass(slots=True)
class FaultInjector:
    rules: list[Rule]
    seed: int = 0
    enabled: bool = True
    injected: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def install(self, client: Any) -> Any:
        """Register the hooks on one boto3 client; returns the client for chaining."""
        events = client.meta.events
        events.register_first("before-call", self._before_call)
        events.register_last("after-call", self._after_call)
        return client

    def _pick(self, operation: str, *, after: bool, body: bytes = b"") -> Fault | None:
        if not self.enabled:
            return None
        for rule in self.rules:
            if (
                not rule.active
                or not rule.matches(operation)
                or (rule.fault in AFTER_CALL) != after
            ):
                continue
            if rule.body_contains is not None and rule.body_contains.encode() not in body:
                continue
            if rule.remaining > 0:  # an outage under way: no draw, the call just fails
                rule.remaining -= 1
                self.injected[f"{operation}:outage_{rule.fault.value}"] += 1
                return rule.fault
            rule.seen += 1
            if rule.seen <= rule.skip or (rule.limit is not None and rule.fired >= rule.limit):
                continue
            if self.rng.random() < rule.probability:
                rule.fired += 1
                rule.remaining = rule.burst - 1
                self.injected[f"{operation}:{rule.fault.value}"] += 1
                return rule.fault
        return None

    def _before_call(self, model: Any, params: Any, **_: Any) -> Any:
        operation = model.name
        fault = self._pick(operation, after=False, body=_body(params))
        if fault is None:
            return None
        if fault is Fault.CRASH_BEFORE:
            raise Crash(f"crash before {operation}")
        if fault is Fault.REFUSE:
            raise EndpointConnectionError(endpoint_url="http://injected-fault")
        if fault is Fault.THROTTLE:
            return _error(400, "ProvisionedThroughputExceededException", "injected throttle")
        if fault is Fault.SERVER_ERROR:
            return _error(500, "InternalServerError", "injected server error")
        if fault is Fault.MIXED_CANCEL and operation == "TransactWriteItems":
            count = _transact_item_count(params)
            reasons = [{"Code": "TransactionConflict", "Message": "injected"}] + [
                {"Code": "ConditionalCheckFailed", "Message": "injected"}
            ] * (count - 1)
            return _error(
                400,
                "TransactionCanceledException",
                "Transaction cancelled (injected mixed reasons)",
                reasons,
            )
        # CONFLICT
        if operation == "TransactWriteItems":
            count = _transact_item_count(params)
            reasons = [{"Code": "TransactionConflict", "Message": "injected"}] * count
            return _error(
                400,
                "TransactionCanceledException",
                "Transaction cancelled (injected conflict)",
                reasons,
            )
        return _error(400, "TransactionConflictException", "injected conflict")

    def _after_call(self, model: Any, **_: Any) -> None:
        operation = model.name
        fault = self._pick(operation, after=True)
        if fault is Fault.CRASH_AFTER:
            raise Crash(f"crash after {operation}")
        if fault is Fault.LOSE_RESPONSE:
            raise ReadTimeoutError(endpoint_url="http://injected-fault")


def _body(request_dict: Any) -> bytes:
    """The serialized request body `before-call` sees (bytes or text, by botocore version)."""
    body = request_dict.get("body") if isinstance(request_dict, dict) else None
    if isinstance(body, str):
        return body.encode()
    return body if isinstance(body, bytes) else b""


def _transact_item_count(request_dict: Any) -> int:
    """`before-call` sees the serialized request; DynamoDB's body is JSON."""
    try:
        body = json.loads(request_dict.get("body") or b"{}")
        return max(1, len(body.get("TransactItems", [])))
    except (ValueError, AttributeError):
        return 1


def _error(
    status: int, code: str, message: str, reasons: list[dict[str, str]] | None = None
) -> tuple[AWSResponse, dict[str, Any]]:
    parsed: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    if reasons is not None:
        parsed["CancellationReasons"] = reasons
    response = AWSResponse("http://injected-fault", status, HTTPHeaders(), _RawBody(b"{}"))
    return response, parsed
