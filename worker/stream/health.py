"""Liveness for container health checks: the worker refreshes a heartbeat file while it is
working (the local driver after every stream poll, the KCL supervisor while the Java daemon
lives); `budget-worker health` reports whether the heartbeat is recent."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from worker.config import ToolSettings
from worker.errors import InfrastructureError


class Unhealthy(InfrastructureError):
    """The running worker's heartbeat is missing or too old."""


def heartbeat_path() -> Path | None:
    return ToolSettings.from_env().heartbeat_file


def beat(path: Path | None = None) -> None:
    path = path or heartbeat_path()
    if path is None:
        return
    with contextlib.suppress(OSError):  # a health signal must never take the worker down
        path.touch()


def check(max_age: float, path: Path | None = None, now: float | None = None) -> float:
    """Age of the heartbeat in seconds, or Unhealthy saying why not."""
    path = path or heartbeat_path()
    if path is None:
        raise Unhealthy("BUDGET_HEARTBEAT_FILE is not set: nothing to check")
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        raise Unhealthy(f"no heartbeat at {path}: the worker has not started working") from None
    if age > max_age:
        raise Unhealthy(f"heartbeat is {age:.0f}s old (limit {max_age:.0f}s)")
    return age
