"""Settings read from the environment (CLI contract: standard AWS variables plus BUDGET_*).

Every setting is read here and nowhere else (`tests/test_settings_reads.py` checks): `Settings`
is what the library needs, `KclSettings` what the KCL launcher resolves, `ToolSettings` the
knobs of the stream worker, its drivers and the local tooling. Other modules may only pass the
environment on whole (to a child process).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from worker.errors import InvalidInput

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class Settings:
    """Where the tables and endpoints are and how patient a DynamoDB call is.

    One object of settings with defaults, passed to `BudgetWorker` (or built by `from_env`
    from `AWS_REGION`, `AWS_ENDPOINT_URL*` and `BUDGET_*`), so tests and apps can configure
    the library without touching the process environment.
    """

    events_table: str = "budget-events"
    projections_table: str = "budget-projections"
    lease_table: str = "budget-worker"
    retry_queue_url: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None
    streams_endpoint_url: str | None = None
    # Give up on one DynamoDB call after this many seconds (connect + read), so an ambiguous
    # call surfaces quickly instead of hanging a catch-up.
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    # Attempts of botocore's standard retry mode (throttling, 5xx, transient network errors).
    sdk_max_attempts: int = 5
    # Budgets handled at once: a stream batch's budgets, `events import`, the sweep
    # (BUDGET_CONCURRENCY; default by measurement, BENCHMARKS.md).
    concurrency: int = 16
    # Seconds a stream worker waits before rebuilding a caught-up budget's snapshots, coalescing
    # the budget's later batches into one rebuild (BUDGET_SNAPSHOT_DELAY; 0 = rebuild inline
    # after each catch-up). The dirty markers keep what is waiting durable (I4). 5 s by
    # measurement: at 50 events/s over 100 budgets, 1 s made rebuilds saturate DynamoDB Local
    # and end-to-end lag p99 1.4 s; 5 s gave 0.75 s (BENCHMARKS.md).
    snapshot_delay: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        kcl = KclSettings.resolve({}, env, check=False)
        return cls(
            events_table=kcl.events_table,
            projections_table=_first(env.get("BUDGET_PROJECTIONS_TABLE")) or cls.projections_table,
            lease_table=kcl.lease_table,
            retry_queue_url=_first(env.get("BUDGET_RETRY_QUEUE_URL")),
            region=kcl.region,
            endpoint_url=kcl.dynamodb_endpoint,
            streams_endpoint_url=kcl.streams_endpoint,
            concurrency=_positive(env, "BUDGET_CONCURRENCY", cls.concurrency),
            snapshot_delay=_seconds(env, "BUDGET_SNAPSHOT_DELAY", cls.snapshot_delay),
        )

    def with_kcl(self, kcl: KclSettings) -> Settings:
        """These settings where the KCL launcher's resolution (properties file included) says."""
        return replace(
            self,
            events_table=kcl.events_table,
            lease_table=kcl.lease_table,
            region=kcl.region,
            endpoint_url=kcl.dynamodb_endpoint,
            streams_endpoint_url=kcl.streams_endpoint,
        )


# The supervisor's log and metrics channel, set by `run` in its children's environment.
SUPERVISOR_CHANNEL_ENV = "BUDGET_SUPERVISOR_CHANNEL"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "budget-worker"


@dataclass(frozen=True)
class ToolSettings:
    """The stream worker's, the drivers' and the local tooling's knobs. Apart from `Settings`
    because an app embedding the library never needs them (and `Settings` is public API)."""

    log_level: str | None = None  # BUDGET_LOG_LEVEL; None: the command's own default
    log_format: str = ""  # BUDGET_LOG_FORMAT: json, console, or "" (JSON off a terminal)
    supervisor_channel: str | None = None  # BUDGET_SUPERVISOR_CHANNEL
    metrics: str = "off"  # BUDGET_METRICS: off or emf
    metrics_namespace: str = "BudgetWorker"  # BUDGET_METRICS_NAMESPACE
    heartbeat_file: Path | None = None  # BUDGET_HEARTBEAT_FILE
    # How many times shard end retries pending budgets before the child exits
    # (BUDGET_SHARD_END_ATTEMPTS); backoff doubles from 1 s up to 30 s.
    shard_end_attempts: int = 6
    poll_seconds: float | None = None  # BUDGET_POLL_SECONDS; None: the local driver's default
    lease_failover_seconds: float | None = None  # BUDGET_LEASE_FAILOVER_SECONDS
    kcl_properties: str | None = None  # BUDGET_KCL_PROPERTIES
    kcl_launcher_jar: str | None = None  # BUDGET_KCL_LAUNCHER_JAR
    # Where DynamoDB Local is cached: BUDGET_CACHE_DIR, else $XDG_CACHE_HOME/budget-worker.
    cache_dir: Path = field(default_factory=_default_cache_dir)
    # AWS_ACCESS_KEY_ID or AWS_PROFILE is set (else DynamoDB Local gets dummy credentials).
    aws_credentials: bool = False
    # BUDGET_LAMBDA_* as given: the local Lambda driver's event source mapping settings.
    lambda_esm: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ToolSettings:
        env = os.environ if env is None else env
        xdg = _first(env.get("XDG_CACHE_HOME"))
        cache = _first(env.get("BUDGET_CACHE_DIR"))
        return cls(
            log_level=_first(env.get("BUDGET_LOG_LEVEL")),
            log_format=(env.get("BUDGET_LOG_FORMAT") or "").lower(),
            supervisor_channel=_first(env.get(SUPERVISOR_CHANNEL_ENV)),
            metrics=(env.get("BUDGET_METRICS") or "off").lower(),
            metrics_namespace=env.get("BUDGET_METRICS_NAMESPACE") or cls.metrics_namespace,
            heartbeat_file=Path(raw) if (raw := _first(env.get("BUDGET_HEARTBEAT_FILE"))) else None,
            shard_end_attempts=_number(
                env,
                "BUDGET_SHARD_END_ATTEMPTS",
                6,
                int,
                "a whole number",
                _not_negative,
                "0 or more",
            ),
            poll_seconds=_optional_seconds(env, "BUDGET_POLL_SECONDS"),
            lease_failover_seconds=_optional_seconds(env, "BUDGET_LEASE_FAILOVER_SECONDS"),
            kcl_properties=_first(env.get("BUDGET_KCL_PROPERTIES")),
            kcl_launcher_jar=_first(env.get("BUDGET_KCL_LAUNCHER_JAR")),
            cache_dir=(
                Path(cache)
                if cache
                else (Path(xdg) / "budget-worker" if xdg else _default_cache_dir())
            ),
            aws_credentials=bool(env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE")),
            lambda_esm={k: v for k, v in env.items() if k.startswith("BUDGET_LAMBDA_")},
        )


class KclConfigError(InvalidInput):
    """The KCL configuration would run, but not safely (for example two deployments sharing
    KCL 3's leader lock); the message says what to change."""


COORDINATOR_STATE_SUFFIX = "-CoordinatorState"
WORKER_METRICS_SUFFIX = "-WorkerMetricStats"


@dataclass(frozen=True)
class KclSettings:
    """What the production path runs against, resolved from a KCL properties file and the
    environment by the one rule the Java launcher applies too
    (`launcher/.../LauncherConfig.java`; `tests/test_launcher_config.py` runs both over the
    same cases): the service-specific endpoint variable, then `AWS_ENDPOINT_URL`, then the file
    (the streams endpoint finally falls back to the DynamoDB one: DynamoDB Local serves both);
    `AWS_REGION`, `AWS_DEFAULT_REGION`, then the file; `BUDGET_*` table names, then the file.

    The KCL application name is the lease table's name: KCL 3 names its leader-lock and
    worker-metrics tables `<applicationName>-CoordinatorState` / `-WorkerMetricStats`, so
    deployments with their own lease tables can never share them. An explicit
    `BUDGET_KCL_APPLICATION_NAME` (or `applicationName` in the file) that disagrees is refused.
    """

    region: str = "us-east-1"
    dynamodb_endpoint: str | None = None
    streams_endpoint: str | None = None
    events_table: str = "budget-events"
    lease_table: str = "budget-worker"
    stream_arn: str | None = None

    @property
    def application_name(self) -> str:
        return self.lease_table

    @property
    def coordinator_state_table(self) -> str:
        return self.application_name + COORDINATOR_STATE_SUFFIX

    @property
    def worker_metrics_table(self) -> str:
        return self.application_name + WORKER_METRICS_SUFFIX

    @classmethod
    def from_env(
        cls, properties: Mapping[str, str], env: Mapping[str, str] | None = None
    ) -> KclSettings:
        """`resolve` over this process's environment (or `env`), with the refusals."""
        return cls.resolve(properties, os.environ if env is None else env)

    @classmethod
    def resolve(
        cls, properties: Mapping[str, str], env: Mapping[str, str], *, check: bool = True
    ) -> KclSettings:
        """`check=False` skips the refusals (commands other than the KCL worker never run
        KCL, so a KCL-only mistake must not stop them)."""
        generic = env.get("AWS_ENDPOINT_URL")
        ddb = _first(
            env.get("AWS_ENDPOINT_URL_DYNAMODB"), generic, properties.get("dynamoDbEndpoint")
        )
        streams = _first(
            env.get("AWS_ENDPOINT_URL_DYNAMODB_STREAMS"),
            generic,
            properties.get("dynamoDbStreamsEndpoint"),
            ddb,
        )
        lease = (
            _first(env.get("BUDGET_LEASE_TABLE"), properties.get("tableName")) or cls.lease_table
        )
        resolved = cls(
            region=_first(
                env.get("AWS_REGION"), env.get("AWS_DEFAULT_REGION"), properties.get("regionName")
            )
            or cls.region,
            dynamodb_endpoint=ddb,
            streams_endpoint=streams,
            events_table=_first(env.get("BUDGET_EVENTS_TABLE"), properties.get("eventsTableName"))
            or cls.events_table,
            lease_table=lease,
            stream_arn=_first(env.get("BUDGET_STREAM_ARN"), properties.get("dynamoDbStreamArn")),
        )
        if not check:
            return resolved
        from_env = _first(env.get("BUDGET_KCL_APPLICATION_NAME"))
        explicit = from_env or _first(properties.get("applicationName"))
        if explicit is not None and explicit != lease:
            source = "BUDGET_KCL_APPLICATION_NAME" if from_env else "applicationName (properties)"
            raise KclConfigError(
                f"KCL application name {explicit} ({source}) differs from the lease table "
                f"{lease}: KCL 3 names its leader-lock and worker-metrics tables after the "
                "application, so deployments with their own lease tables would share them; "
                f"unset {source} (it is derived from the lease table) or make it equal "
                "BUDGET_LEASE_TABLE"
            )
        for key, derived in (
            ("coordinatorStateTableName", resolved.coordinator_state_table),
            ("workerMetricsTableName", resolved.worker_metrics_table),
        ):
            value = _first(properties.get(key))
            if value is not None and value != derived:
                raise KclConfigError(
                    f"{key} = {value} in the properties file: this launcher names that table "
                    f"{derived} (after the lease table); remove the key"
                )
        return resolved

    def as_env(self) -> dict[str, str]:
        """The resolution as environment variables: handed to the launcher, and through it to
        every `kcl-processor`, so the daemon and its children cannot disagree."""
        env = {
            "AWS_REGION": self.region,
            "BUDGET_EVENTS_TABLE": self.events_table,
            "BUDGET_LEASE_TABLE": self.lease_table,
            "BUDGET_KCL_APPLICATION_NAME": self.application_name,
        }
        if self.dynamodb_endpoint:
            env["AWS_ENDPOINT_URL_DYNAMODB"] = self.dynamodb_endpoint
        if self.streams_endpoint:
            env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = self.streams_endpoint
        if self.stream_arn:
            env["BUDGET_STREAM_ARN"] = self.stream_arn
        return env

    def as_dict(self) -> dict[str, str | None]:
        """The keys `LauncherConfig --print-resolved` prints."""
        return {
            "region": self.region,
            "dynamodb_endpoint": self.dynamodb_endpoint,
            "streams_endpoint": self.streams_endpoint,
            "events_table": self.events_table,
            "lease_table": self.lease_table,
            "stream_arn": self.stream_arn,
            "application_name": self.application_name,
            "coordinator_state_table": self.coordinator_state_table,
            "worker_metrics_table": self.worker_metrics_table,
        }


def _first(*values: str | None) -> str | None:
    """The first value that is not blank, stripped (blank counts as absent on both sides)."""
    for value in values:
        if value is not None and value.strip():
            return value.strip()
    return None


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\(.)", re.DOTALL)
_KEY_VALUE = re.compile(r"((?:[^\\=:\s]|\\.)*)\s*[=:]?\s*(.*)$", re.DOTALL)


def read_properties(path: str | Path) -> dict[str, str]:
    """A Java `.properties` file as `java.util.Properties.load` reads it (`#`/`!` comments;
    `=`, `:` or whitespace between key and value; backslash continuations and escapes), so the
    Python side sees exactly the keys and values the launcher sees."""
    logical: list[str] = []
    pending: str | None = None
    for raw in Path(path).read_text(encoding="latin-1").splitlines():
        line = raw.lstrip(" \t\f")
        if pending is None and (not line or line[0] in "#!"):
            continue
        if (len(line) - len(line.rstrip("\\"))) % 2 == 1:  # an odd backslash run continues
            pending = (pending or "") + line[:-1]
            continue
        logical.append((pending or "") + line)
        pending = None
    if pending is not None:
        logical.append(pending)
    out: dict[str, str] = {}
    for line in logical:
        match = _KEY_VALUE.match(line)
        assert match is not None  # the pattern matches every string
        out[_unescape(match.group(1))] = _unescape(match.group(2))
    return out


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return chr(int(match.group(1), 16))
        char = match.group(2)
        return _ESCAPES.get(char, char)

    return _ESCAPE.sub(one, text)


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int, "a whole number", lambda v: v >= 1, "at least 1")


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    finite = float("inf")
    return _number(
        env, name, default, float, "a number of seconds", lambda v: 0 <= v < finite, "0 or more"
    )


def _not_negative(value: float) -> bool:
    return value >= 0


def _optional_seconds(env: Mapping[str, str], name: str) -> float | None:
    """Seconds when set, None when unset or empty (the caller's default then applies)."""
    return _seconds(env, name, 0.0) if env.get(name) else None


def _number(
    env: Mapping[str, str],
    name: str,
    default: N,
    parse: Callable[[str], N],
    kind: str,
    valid: Callable[[N], bool],
    bound: str,
) -> N:
    """A number from the environment (default when unset or empty), refused in one line."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be {kind}, not {raw!r}") from None
    if not valid(value):
        raise InvalidInput(f"{name} must be {bound}, not {raw}")
    return value


@contextmanager
def temporary_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them exactly."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
