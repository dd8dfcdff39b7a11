"""The embedded default: DynamoDB Local is fetched once, Java is checked, `dev` works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.local import dynamodb_local


def test_java_version_is_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert dynamodb_local.java_major_version() == 11
    with pytest.raises(dynamodb_local.LocalSetupError, match="needs Java 17"):
        dynamodb_local.check_java()


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(dynamodb_local.LocalSetupError, match="no `java` is on PATH"):
        dynamodb_local.check_java()


def test_fetch_is_idempotent_and_cached_outside_the_repo() -> None:
    first = dynamodb_local.fetch()
    assert (first / "DynamoDBLocal.jar").is_file()
    assert dynamodb_local.fetch() == first
    repo = Path(__file__).resolve().parents[1]
    assert repo not in first.resolve().parents


def test_dev_demo_runs_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "dev", "--demo", "--once"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BUDGET_LOG_FORMAT": "json"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "applied by the stream worker" in done.stdout and "rejected 1" in done.stdout
    assert "transaction ghost-1 does not exist" in done.stdout
    assert "-58.30" in done.stdout and "-5830" not in done.stdout  # amounts for people
    assert "DynamoDB Local stopped" in done.stdout
