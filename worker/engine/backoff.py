"""Retry pacing and the generic retry loop for calls that are safe to repeat.

Full-jitter exponential backoff (the AWS Architecture Blog's recommendation) keeps racing
projectors and writers from retrying in lock-step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from worker import logs
from worker.engine.failures import Outcome, classify, error_code
from worker.errors import InfrastructureError

T = TypeVar("T")
log = logs.get(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    attempts: int = 8
    base: float = 0.02
    cap: float = 1.0

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """One delay before each retry (so `attempts - 1` of them)."""
        rng = rng or random.Random()
        for attempt in range(self.attempts - 1):
            yield rng.uniform(0, min(self.cap, self.base * 2**attempt))


def _retry(
    what: str,
    fn: Callable[[], T],
    *,
    is_write: bool,
    backoff: Backoff,
    sleep: Callable[[float], None],
) -> T:
    delays = backoff.delays()
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            outcome = classify(exc, is_write=is_write)
            if outcome is Outcome.DEFINITE:
                raise
            delay = next(delays, None)
            if delay is None:
                raise InfrastructureError(
                    f"{what} failed after {attempt} attempts: {error_code(exc)}: {exc}"
                ) from exc
            log.info(
                "retrying",
                what=what,
                attempt=attempt,
                outcome=outcome.value,
                error=error_code(exc),
                delay=round(delay, 3),
            )
            sleep(delay)
            attempt += 1


def retry_read(
    what: str,
    fn: Callable[[], T],
    *,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run a read (or any call with no side effect) until it succeeds or definitely fails."""
    return _retry(what, fn, is_write=False, backoff=backoff, sleep=sleep)


def retry_write(
    what: str,
    fn: Callable[[], T],
    *,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run a write that is safe to repeat (conditional and idempotent): retry throttling,
    conflicts and ambiguous failures; raise definite failures (a failed condition included)
    for the caller to interpret."""
    return _retry(what, fn, is_write=True, backoff=backoff, sleep=sleep)
