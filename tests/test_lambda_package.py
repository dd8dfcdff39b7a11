"""`make lambda-package`: the zip, unpacked into an empty folder, is imported by a plain
interpreter (no virtualenv, no site-packages: `python -I -S`, as close to Lambda's runtime as
this machine gets) and its handler, invoked with genuine stream records in Lambda's shape,
catches a budget up on DynamoDB Local. No KCL in it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import CREATE_T, assert_matches_fold, fresh_tables, new_budget
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.stream import records
from worker.stream.local_driver import stream_arn
from worker.stream.shard_reads import read_all

ROOT = Path(__file__).resolve().parents[1]
HANDLER = "worker.stream.lambda_handler.handler"

# What Lambda's Python bootstrap does: the task root first on the path, then the handler.
CALL = """
import importlib, json, os, sys
sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
module, name = sys.argv[1].rsplit(".", 1)
handler = getattr(importlib.import_module(module), name)
assert "site-packages" not in " ".join(sys.path), sys.path
class Context:
    def get_remaining_time_in_millis(self):
        return 30_000
event = json.load(open(sys.argv[2]))
print(json.dumps({"response": handler(event, Context()),
                  "kclpy": "amazon_kclpy" in sys.modules}))
"""


def plain_python() -> str:
    """An interpreter outside the project's virtualenv."""
    for candidate in ("/usr/bin/python3.12", "/usr/bin/python3.11", "/usr/bin/python3"):
        if Path(candidate).exists():
            return candidate
    found = shutil.which("python3.12") or shutil.which("python3.11")
    if found is None:
        pytest.skip("no plain python3.11/3.12 on this machine")
    return found


@pytest.mark.ddb_local
def test_the_zip_runs_in_a_plain_interpreter_against_dynamodb_local(
    ddb_endpoint: str, tmp_path: Path
) -> None:
    python = plain_python()
    version = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    zip_path = tmp_path / "function.zip"
    built = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lambda_package.py")],
        env={**os.environ, "LAMBDA_OUT": str(zip_path), "LAMBDA_PYTHON": version},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == str(zip_path)
    names = zipfile.ZipFile(zip_path).namelist()
    assert "worker/stream/lambda_handler.py" in names
    assert not [n for n in names if n.endswith(".jar") or n.startswith("amazon_kclpy")]
    folder = tmp_path / "task"
    folder.mkdir()
    zipfile.ZipFile(zip_path).extractall(folder)

    settings = fresh_tables(ddb_endpoint, "zip")
    store = Store.from_settings(aws.dynamodb(settings), settings)
    budget = new_budget()
    persister = Persister(store)
    for n in range(3):
        persister.persist(budget, "TransactionCreated", f"t{n}", {**CREATE_T, "amount": n})
    arn = stream_arn(aws.dynamodb(settings), settings.events_table)
    event = {
        "Records": [
            records.encode(r, records.LAMBDA, stream_arn=arn)
            for r in read_all(aws.dynamodb_streams(settings), arn)
        ]
    }
    (tmp_path / "event.json").write_text(json.dumps(event))

    env = {
        "PATH": "/usr/bin:/bin",
        "LAMBDA_TASK_ROOT": str(folder),
        "AWS_REGION": settings.region,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_ENDPOINT_URL": ddb_endpoint,
        "BUDGET_EVENTS_TABLE": settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": settings.projections_table,
        "BUDGET_METRICS": "emf",
    }
    done = subprocess.run(
        [python, "-I", "-S", "-c", CALL, HANDLER, str(tmp_path / "event.json")],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    result = json.loads(lines[-1])
    assert result == {"response": {"batchItemFailures": []}, "kclpy": False}
    assert any('"EventsApplied"' in line for line in lines)  # EMF on stdout, as on Lambda
    assert store.pointer(budget) == store.head(budget)
    assert_matches_fold(store, budget)
