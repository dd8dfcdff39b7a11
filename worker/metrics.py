"""Operational metrics in CloudWatch Embedded Metric Format (EMF), flushed per batch.

Switched by `BUDGET_METRICS` (`off`, the default; `emf`, the container image's default) with the
namespace `BUDGET_METRICS_NAMESPACE` (default `BudgetWorker`). An EMF document is one JSON line
in the container's log; CloudWatch Logs turns it into metrics, so the worker needs no
`PutMetricData` call, no agent and no extra permission.

The EMF format comes from Powertools for AWS Lambda (`EphemeralMetrics`: a maintained
serializer that validates names, units and limits; it works outside Lambda). This module adds
what Powertools does not: counters shared by threads behind one lock, and one flush per batch
(never per event) to a sink chosen by the process. `run` writes to its stdout. A `kcl-processor`
child cannot (its stdout is the MultiLang protocol, and the KCL daemon logs its stderr as
errors), so it hands its documents to `run` through the supervisor channel, which prints them.

Dimensions are low-cardinality only: `service` (always `budget-worker`). Never a budget id.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from worker import logs
from worker.config import ToolSettings

# Every metric the worker emits, with its unit.
COUNTS = (
    "EventsApplied",  # events applied to a projection
    "EventsRejected",  # poison events recorded as rejected (I6)
    "StepConflicts",  # steps lost to a racing projector (pointer moved)
    "CatchUpFailures",  # budgets whose catch-up (or rebuild) failed in a batch
    "BudgetsQueued",  # budgets handed to the retry queue
    "CheckpointsHeld",  # batches not checkpointed because a budget is pending
    "DaemonRestarts",  # restarts of the KCL daemon by `run --driver kcl`
    "StreamRecordsSkipped",  # Lambda: records naming no budget (head, REMOVE, TTL, foreign)
    "StreamRecordsMalformed",  # Lambda: records that could not be read (logged, skipped)
)
SECONDS = ("ProjectionLagSeconds",)  # age of the oldest unapplied event when a catch-up starts
SERVICE = "budget-worker"
CHANNEL_ENV = logs.CHANNEL_ENV  # set by `run` for its children

Sink = Callable[[dict[str, Any]], None]


class Metrics:
    """Thread-safe counters and observations, turned into one EMF document per `flush`."""

    def __init__(self, namespace: str, sink: Sink | None) -> None:
        self.namespace = namespace
        self._sink = sink
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._observed: dict[str, list[float]] = {}

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    def count(self, name: str, value: int = 1) -> None:
        if self._sink is None or value == 0:
            return
        if name not in COUNTS:
            raise ValueError(f"unknown count metric {name!r}")
        with self._lock:
            self._counts[name] += value

    def observe(self, name: str, value: float) -> None:
        if self._sink is None:
            return
        if name not in SECONDS:
            raise ValueError(f"unknown seconds metric {name!r}")
        with self._lock:
            self._observed.setdefault(name, []).append(float(value))

    def flush(self) -> dict[str, Any] | None:
        """Send what accumulated since the last flush as one EMF document (nothing if empty)."""
        if self._sink is None:
            return None
        with self._lock:
            counts, observed = dict(self._counts), self._observed
            self._counts, self._observed = Counter(), {}
        if not counts and not observed:
            return None
        document = emf_document(self.namespace, counts, observed)
        self._sink(document)
        return document


def record_catch_up(metrics: Metrics, result: Any) -> None:
    """The figures of one budget's catch-up (a `CatchUpResult`)."""
    metrics.count("EventsApplied", result.applied)
    metrics.count("EventsRejected", result.rejected)
    metrics.count("StepConflicts", getattr(result, "conflicts", 0))
    lag = getattr(result, "lag_seconds", None)
    if lag is not None:
        metrics.observe("ProjectionLagSeconds", lag)


def emf_document(
    namespace: str, counts: Mapping[str, int], observed: Mapping[str, list[float]]
) -> dict[str, Any]:
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    emf = EphemeralMetrics(namespace=namespace, service=SERVICE)
    for name, total in sorted(counts.items()):
        emf.add_metric(name=name, unit=MetricUnit.Count, value=total)
    for name, values in sorted(observed.items()):
        # EMF takes at most 100 values per metric in one document; keep the largest (the lag
        # an alarm cares about is the worst one).
        for value in sorted(values)[-100:]:
            emf.add_metric(name=name, unit=MetricUnit.Seconds, value=value)
    return dict(emf.serialize_metric_set())


def stdout_sink(document: dict[str, Any]) -> None:
    """One whole line on stdout (`run`'s container log)."""
    sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def channel_sink(path: str) -> Sink:
    """One datagram per document to the supervisor (`run`), which prints it on its stdout; the
    same non-blocking sender as the child's log lines. A document the supervisor cannot take
    is dropped: figures are not worth stalling a shard for."""
    channel = logs.ChannelLogger(path, sys.stderr)

    def send(document: dict[str, Any]) -> None:
        channel.send(json.dumps(document, separators=(",", ":")))

    return send


_current = Metrics("BudgetWorker", None)


def configure(*, child: bool = False, env: Mapping[str, str] | None = None) -> Metrics:
    """Set up the process's metrics from the environment and return them. In a child, the
    documents go to the supervisor's channel (none configured: metrics off)."""
    global _current
    tools = ToolSettings.from_env(env)
    if tools.metrics not in ("off", "emf"):
        raise ValueError(f"BUDGET_METRICS must be off or emf, not {tools.metrics!r}")
    sink: Sink | None = None
    if tools.metrics == "emf":
        if not child:
            sink = stdout_sink
        elif tools.supervisor_channel:
            sink = channel_sink(tools.supervisor_channel)
    _current = Metrics(tools.metrics_namespace, sink)
    return _current


def current() -> Metrics:
    """The process's metrics (off until `configure` is called)."""
    return _current
