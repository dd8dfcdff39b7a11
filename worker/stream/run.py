"""`budget-worker run`: the long-running worker.

- `--driver local`: the local stream driver (DynamoDB Local's stream, single process).
- `--driver lambda`: DynamoDB Local's stream fed to the Lambda handler in Lambda's event shape,
  with the event source mapping's semantics (`lambda_driver`), in this process.
- `--driver kcl`: supervises the Java MultiLangDaemon launcher (KCL 3.x + DynamoDB Streams
  Kinesis Adapter 2.x), which spawns `budget-worker kcl-processor` per shard.
Either way, if `BUDGET_RETRY_QUEUE_URL` is set, this process also consumes the retry queue,
and the children log through this process (`supervisor_channel`), each line with its level.
SIGTERM/SIGINT stop gracefully: shards get `shutdownRequested` (a last checkpoint) first.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from types import FrameType

from botocore.exceptions import BotoCoreError, ClientError

from worker import logs, metrics
from worker.config import KclSettings, Settings, ToolSettings, read_properties
from worker.engine import aws
from worker.errors import InvalidInput
from worker.stream import health, lambda_handler, region_proxy
from worker.stream.lambda_driver import EsmConfig, LambdaDriver
from worker.stream.local_driver import DriverConfig, LocalDriver
from worker.stream.retry_queue import consume
from worker.stream.runtime import budget_handler, retry_queue
from worker.stream.supervisor_channel import SupervisorChannel, forward

log = logs.get(__name__)

DEFAULT_LAUNCHER_JAR = "/opt/budget-worker/budget-worker-launcher.jar"
# Where `make setup` builds it in a checkout (the package installed editable from the repo).
CHECKOUT_LAUNCHER_JAR = (
    Path(__file__).resolve().parents[2] / "launcher" / "target" / "budget-worker-launcher.jar"
)
DEFAULT_PROPERTIES = "/opt/budget-worker/properties/production.properties"


class LauncherMissing(InvalidInput):
    """The Java launcher or its properties file is not where the configuration says."""


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def start_queue_consumer(
    settings: Settings, stop: threading.Event, *, wait_seconds: int = 10
) -> threading.Thread | None:
    """Consume the retry queue on a daemon thread until `stop` is set (None without a queue).
    Stopping waits out the current long poll (`wait_seconds`), which tests shorten."""
    queue = retry_queue(settings)
    if queue is None:
        return None
    thread = threading.Thread(
        target=consume,
        args=(queue, budget_handler(settings), stop),
        kwargs={"wait_seconds": wait_seconds},
        name="retry-queue",
        daemon=True,
    )
    thread.start()
    log.info("consuming the retry queue", queue_url=settings.retry_queue_url)
    return thread


def run_local(
    settings: Settings, stop: threading.Event, config: DriverConfig | None = None
) -> None:
    queue_thread = start_queue_consumer(settings, stop)
    config = config or DriverConfig.from_env()
    with SupervisorChannel(forward) as channel:
        env = {**(config.processor_env or os.environ), logs.CHANNEL_ENV: channel.path}
        driver = LocalDriver(
            aws.dynamodb(settings),
            aws.dynamodb_streams(settings),
            settings.events_table,
            settings.lease_table,
            replace(config, processor_env=env),
        )
        driver.run(stop, on_cycle=health.beat)
    if queue_thread is not None:
        queue_thread.join(timeout=30)


def run_lambda(settings: Settings, stop: threading.Event, esm: EsmConfig | None = None) -> None:
    """The Lambda path on one machine: the handler a deployed function would run, invoked in
    this process per batch, and (as the function's SQS trigger would) the retry queue."""
    queue_thread = start_queue_consumer(settings, stop)
    driver = LambdaDriver(
        aws.dynamodb(settings),
        aws.dynamodb_streams(settings),
        settings.events_table,
        settings.lease_table,
        lambda_handler.from_settings(settings),
        esm or EsmConfig.from_env(),
        DriverConfig.from_env(),
    )
    driver.run(stop, on_cycle=health.beat)
    if queue_thread is not None:
        queue_thread.join(timeout=30)


def kcl_settings(properties: str, env: dict[str, str] | None = None) -> KclSettings:
    """The launcher's view of the deployment (the same rule as its `LauncherConfig`); raises
    `KclConfigError` (exit 2) for a configuration that must not run, before anything starts."""
    return KclSettings.from_env(read_properties(properties), env)


def launcher_jar(env: Mapping[str, str] | None = None) -> str:
    """The jar to run: BUDGET_KCL_LAUNCHER_JAR, else the image's, else a checkout's build."""
    configured = ToolSettings.from_env(env).kcl_launcher_jar
    if configured:
        return configured
    if not Path(DEFAULT_LAUNCHER_JAR).is_file() and CHECKOUT_LAUNCHER_JAR.is_file():
        return str(CHECKOUT_LAUNCHER_JAR)
    return DEFAULT_LAUNCHER_JAR


def run_kcl(settings: Settings, stop: threading.Event) -> int:
    jar = launcher_jar()
    properties = ToolSettings.from_env().kcl_properties or DEFAULT_PROPERTIES
    java = shutil.which("java")
    if java is None or not Path(jar).is_file():
        raise LauncherMissing(
            f"the KCL launcher needs java and {jar} (built by `make setup` and the Docker "
            "image; set BUDGET_KCL_LAUNCHER_JAR) — or use `run --driver local` against "
            "DynamoDB Local"
        )
    if not Path(properties).is_file():
        raise LauncherMissing(
            f"KCL properties file {properties} not found (set BUDGET_KCL_PROPERTIES)"
        )
    kcl = kcl_settings(properties)
    # This process (the retry queue) and, through the daemon's environment, every
    # kcl-processor use exactly what the launcher resolved, properties file included.
    settings = settings.with_kcl(kcl)
    log.info(
        "KCL deployment",
        application=kcl.application_name,
        lease_table=kcl.lease_table,
        coordinator_state_table=kcl.coordinator_state_table,
        worker_metrics_table=kcl.worker_metrics_table,
        events_table=kcl.events_table,
        region=kcl.region,
        endpoint=kcl.dynamodb_endpoint,
    )
    command = [java, "-jar", jar, "--properties-file", properties]
    with SupervisorChannel(forward) as channel, ExitStack() as stack:
        env = {**os.environ, **kcl.as_env(), logs.CHANNEL_ENV: channel.path}
        env.update(_dynamodb_local_shim(settings, kcl, stack))
        return _supervise(command, env, settings, stop)


def _dynamodb_local_shim(settings: Settings, kcl: KclSettings, stack: ExitStack) -> dict[str, str]:
    """Against DynamoDB Local, the launcher's endpoints go through `region_proxy` (the pinned
    adapter rejects DynamoDB Local's `ddblocal` stream region); against AWS, nothing. If the
    stream cannot be looked up (endpoint down, no credentials, no table), no proxy: the
    launcher looks it up too and reports the failure, and the supervisor restarts it with
    backoff, as for any daemon failure; `run` itself must not die before supervising."""
    if kcl.dynamodb_endpoint is None:
        return {}
    arn = kcl.stream_arn
    if arn is None:
        try:
            table = aws.dynamodb(settings).describe_table(TableName=kcl.events_table)["Table"]
        except (BotoCoreError, ClientError) as exc:
            log.warning(
                "cannot look up the events table's stream; starting the launcher without the "
                "DynamoDB Local region proxy",
                events_table=kcl.events_table,
                endpoint=kcl.dynamodb_endpoint,
                error=str(exc),
            )
            return {}
        arn = table.get("LatestStreamArn")
    if not region_proxy.needs_proxy(arn):
        return {}
    proxy = stack.enter_context(region_proxy.RegionProxy(kcl.dynamodb_endpoint, kcl.region))
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint_url,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": proxy.endpoint_url,
        "BUDGET_STREAM_ARN": region_proxy.present(str(arn), kcl.region),
    }


def _supervise(
    command: list[str], env: dict[str, str], settings: Settings, stop: threading.Event
) -> int:
    queue_thread = start_queue_consumer(settings, stop)
    restarts = 0
    while True:
        log.info("starting the KCL MultiLangDaemon launcher", command=command, restarts=restarts)
        daemon = subprocess.Popen(command, env=env)
        while daemon.poll() is None and not stop.wait(1.0):
            health.beat()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)  # KCL's shutdown hook runs a graceful shutdown
            try:
                daemon.wait(timeout=120)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            break
        # The daemon exits (code 1) when any child breaks the protocol or dies, taking every
        # shard with it. Restarting it resumes every shard from its last checkpoint, which the
        # record processor's rule makes safe. Back off so a persistent fault does not spin.
        restarts += 1
        metrics.current().count("DaemonRestarts")
        metrics.current().flush()
        delay = min(60.0, 2.0 ** min(restarts, 6))
        log.error(
            "KCL daemon exited; restarting from the last checkpoints",
            returncode=daemon.returncode,
            restarts=restarts,
            delay=delay,
        )
        if stop.wait(delay):
            break
    requested = stop.is_set()
    stop.set()
    if queue_thread is not None:
        queue_thread.join(timeout=30)
    return 0 if requested else int(daemon.returncode or 0)
