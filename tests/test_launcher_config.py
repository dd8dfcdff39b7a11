"""The two halves of the production worker resolve their configuration by one rule.

The Java launcher's resolution (`LauncherConfig`, pure: it compiles with a bare JDK) is compiled
here with `javac` and run on the same properties files and environments as the Python side
(`KclSettings.resolve`); both must name the same endpoints, region, tables and KCL application
name, and refuse the same configurations. The launcher's JUnit test (launcher/src/test) checks
the rule itself in every Maven build (`make setup` and the Docker build)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from worker.config import KclConfigError, KclSettings, Settings, read_properties

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "launcher/src/main/java/budgetworker/launcher/LauncherConfig.java"

LOCAL = (ROOT / "properties/dynamodb-local.properties").read_text()
PRODUCTION = (ROOT / "properties/production.properties").read_text()
# Java .properties corners: ':' and whitespace separators, escapes, continuations, blanks.
ODD = (
    "! comment\n"
    "regionName: eu-central-1\n"
    "dynamoDbEndpoint http\\://10.0.0.5\\:8000\n"
    "eventsTableName = team\\u002Dc-events\n"
    "tableName = team-c-\\\n"
    "    leases\n"
    "dynamoDbStreamsEndpoint =   \n"
    "dynamoDbStreamArn = arn:aws:dynamodb:eu-central-1:1:table/e/stream/2026\n"
)

CASES: dict[str, tuple[str, dict[str, str]]] = {
    "local file alone": (LOCAL, {}),
    "AWS_ENDPOINT_URL beats the file (issue 9)": (LOCAL, {"AWS_ENDPOINT_URL": "http://ddb:8001"}),
    "service-specific beats generic": (
        LOCAL,
        {
            "AWS_ENDPOINT_URL": "http://generic:1",
            "AWS_ENDPOINT_URL_DYNAMODB": "http://ddb:2",
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": "http://streams:3",
        },
    ),
    "DynamoDB-only variable: streams follow the generic, then the file": (
        LOCAL,
        {"AWS_ENDPOINT_URL_DYNAMODB": "http://ddb:2"},
    ),
    "production on AWS": (PRODUCTION, {"AWS_DEFAULT_REGION": "eu-west-1"}),
    "AWS_REGION beats AWS_DEFAULT_REGION": (
        PRODUCTION,
        {"AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "eu-west-1"},
    ),
    "tables from the environment": (
        PRODUCTION,
        {"BUDGET_EVENTS_TABLE": "team-b-events", "BUDGET_LEASE_TABLE": "team-b-leases"},
    ),
    "blank variables count as absent": (
        LOCAL,
        {"AWS_ENDPOINT_URL": "  ", "AWS_REGION": "", "BUDGET_LEASE_TABLE": ""},
    ),
    "explicit application name equal to the lease table": (
        PRODUCTION,
        {"BUDGET_LEASE_TABLE": "team-b", "BUDGET_KCL_APPLICATION_NAME": "team-b"},
    ),
    "stream ARN from the environment": (
        PRODUCTION,
        {"BUDGET_STREAM_ARN": "arn:aws:dynamodb:us-east-1:1:table/x/stream/1"},
    ),
    "java properties syntax": (ODD, {}),
    "empty file": ("", {}),
}

REFUSED: dict[str, tuple[str, dict[str, str]]] = {
    "own lease table, pinned shared application name (issue 9)": (
        PRODUCTION + "applicationName = budget-worker\n",
        {"BUDGET_LEASE_TABLE": "team-b-leases"},
    ),
    "application name from the environment disagrees": (
        LOCAL,
        {"BUDGET_KCL_APPLICATION_NAME": "shared-app"},
    ),
    "coordinator table the launcher would ignore": (
        LOCAL + "coordinatorStateTableName = shared-CoordinatorState\n",
        {},
    ),
}


@pytest.fixture(scope="module")
def launcher_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    javac = shutil.which("javac")
    assert javac, "javac (JDK 17) is required: `make setup` checks for it"
    classes = tmp_path_factory.mktemp("launcher-classes")
    subprocess.run([javac, "-d", str(classes), str(SOURCE)], check=True, timeout=120)
    return classes


def java_resolve(
    classes: Path, properties: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    java = shutil.which("java")
    assert java
    return subprocess.run(
        [
            java,
            "-cp",
            str(classes),
            "budgetworker.launcher.LauncherConfig",
            "--print-resolved",
            "--properties-file",
            str(properties),
        ],
        env={"PATH": os.environ["PATH"], **env},  # nothing else of this process's AWS set-up
        capture_output=True,
        text=True,
        timeout=60,
    )


def python_resolve(properties: Path, env: dict[str, str]) -> dict[str, Any]:
    return dict(KclSettings.resolve(read_properties(properties), env).as_dict())


@pytest.mark.parametrize("case", list(CASES))
def test_both_sides_resolve_the_same(launcher_config: Path, tmp_path: Path, case: str) -> None:
    text, env = CASES[case]
    properties = tmp_path / "case.properties"
    properties.write_text(text)
    done = java_resolve(launcher_config, properties, env)
    assert done.returncode == 0, done.stderr
    java = json.loads(done.stdout)
    assert java == python_resolve(properties, env)


def test_the_cases_mean_what_the_issue_asks(launcher_config: Path, tmp_path: Path) -> None:
    """Spot checks of the rule itself, on the Java side's output."""

    def java(text: str, env: dict[str, str]) -> dict[str, Any]:
        properties = tmp_path / "spot.properties"
        properties.write_text(text)
        done = java_resolve(launcher_config, properties, env)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    # Only AWS_ENDPOINT_URL set, the file naming 127.0.0.1:8000: the variable wins.
    only_generic = java(LOCAL, {"AWS_ENDPOINT_URL": "http://ddb:8001"})
    assert (
        only_generic["dynamodb_endpoint"] == only_generic["streams_endpoint"] == "http://ddb:8001"
    )
    # Production on AWS: no endpoint override at all.
    aws = java(PRODUCTION, {"AWS_REGION": "eu-west-1"})
    assert aws["dynamodb_endpoint"] is None and aws["streams_endpoint"] is None
    odd = java(ODD, {})
    assert odd["dynamodb_endpoint"] == "http://10.0.0.5:8000"
    assert odd["streams_endpoint"] == "http://10.0.0.5:8000"  # blank key: DynamoDB's endpoint
    assert odd["events_table"] == "team-c-events" and odd["lease_table"] == "team-c-leases"


def test_two_deployments_never_share_kcl_tables(launcher_config: Path, tmp_path: Path) -> None:
    properties = tmp_path / "production.properties"
    properties.write_text(PRODUCTION)
    names = []
    for lease in ("team-a-leases", "team-b-leases"):
        done = java_resolve(launcher_config, properties, {"BUDGET_LEASE_TABLE": lease})
        assert done.returncode == 0, done.stderr
        resolved = json.loads(done.stdout)
        assert resolved == python_resolve(properties, {"BUDGET_LEASE_TABLE": lease})
        assert resolved["application_name"] == lease
        assert resolved["coordinator_state_table"] == f"{lease}-CoordinatorState"
        assert resolved["worker_metrics_table"] == f"{lease}-WorkerMetricStats"
        names.append(resolved)
    a, b = names
    for key in ("application_name", "coordinator_state_table", "worker_metrics_table"):
        assert a[key] != b[key]


@pytest.mark.parametrize("case", list(REFUSED))
def test_both_sides_refuse_the_same(launcher_config: Path, tmp_path: Path, case: str) -> None:
    text, env = REFUSED[case]
    properties = tmp_path / "refused.properties"
    properties.write_text(text)
    done = java_resolve(launcher_config, properties, env)
    assert done.returncode == 2
    assert done.stdout == ""
    with pytest.raises(KclConfigError) as refused:
        KclSettings.resolve(read_properties(properties), env)
    # One clear line each, naming the same culprit.
    java_reason = done.stderr.strip().removeprefix("budget-worker launcher: ")
    assert java_reason == str(refused.value)
    assert "\n" not in java_reason


def test_settings_from_env_follows_the_same_rule_without_a_file() -> None:
    env = {"AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://ddb:2"}
    settings = Settings.from_env(env)
    kcl = KclSettings.resolve({}, env)
    assert (settings.endpoint_url, settings.streams_endpoint_url) == (
        kcl.dynamodb_endpoint,
        kcl.streams_endpoint,
    )
    assert (settings.endpoint_url, settings.streams_endpoint_url) == (
        "http://ddb:2",
        "http://generic:1",
    )
    # Commands that never run KCL are not stopped by a KCL-only mistake.
    assert Settings.from_env({"BUDGET_KCL_APPLICATION_NAME": "other"}).lease_table == (
        "budget-worker"
    )


def test_read_properties_reads_what_java_reads(tmp_path: Path) -> None:
    properties = tmp_path / "odd.properties"
    properties.write_text(ODD + "key\\ with\\ spaces = v\\tw\\\\\n")
    values = read_properties(properties)
    assert values["regionName"] == "eu-central-1"
    assert values["dynamoDbEndpoint"] == "http://10.0.0.5:8000"
    assert values["tableName"] == "team-c-leases"
    assert values["dynamoDbStreamsEndpoint"] == ""
    assert values["key with spaces"] == "v\tw\\"
    assert "! comment" not in values and "!" not in values
