"""The documentation's code is tested code.

Every Python block in README.md and docs/API.md must be a verbatim excerpt of a file under
docs/examples/, and those files run here against DynamoDB Local (so a snippet that stops
working fails the suite, as in eventsourcing's docs tests).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import CREATE_T, assert_matches_fold, raw_client
from worker import BudgetWorker, PersistStatus, Settings
from worker.config import temporary_env
from worker.proof.faults import Fault, FaultInjector, Rule

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
PAGES = [ROOT / "README.md", ROOT / "docs" / "API.md"]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_python_block_is_an_excerpt_of_a_tested_example(page: Path) -> None:
    blocks = python_blocks(page)
    assert blocks, f"{page.name} shows no Python"
    sources = [p.read_text() for p in sorted(EXAMPLES.glob("*.py"))]
    for block in blocks:
        assert any(block in source for source in sources), block[:200]


def env_for(settings: Settings) -> dict[str, str]:
    assert settings.endpoint_url is not None
    return {
        "AWS_ENDPOINT_URL": settings.endpoint_url,
        "AWS_REGION": settings.region,
        "BUDGET_EVENTS_TABLE": settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": settings.projections_table,
    }


def test_lambda_handler_round_trip(ddb_settings: Settings, budget: str) -> None:
    with temporary_env(env_for(ddb_settings)):
        lam = load("lambda_handler")

        def call(method: str, body: dict[str, object] | None = None) -> tuple[int, dict]:
            event = {
                "httpMethod": method,
                "pathParameters": {"budget": budget},
                "body": json.dumps(body) if body is not None else None,
            }
            response = lam.handler(event, None)
            return response["statusCode"], json.loads(response["body"])

        created = {"type": "TransactionCreated", "transaction_id": "t1", "data": CREATE_T}
        status, first = call("POST", created)
        assert (status, first["status"]) == (201, "created")
        status, again = call("POST", {**created, "event_id": first["event_id"]})
        assert (status, again["status"]) == (200, "duplicate")
        status, conflict = call(
            "POST", {**created, "event_id": first["event_id"], "data": {**CREATE_T, "amount": 1}}
        )
        assert status == 409 and "different content" in conflict["error"]
        status, bad = call("POST", {"type": "TransactionCreated", "transaction_id": "t2"})
        assert status == 400 and "error" in bad

        status, view = call("GET")  # the read catches the projection up first
        assert status == 200 and view["as_of_event"] == first["event_id"]
        assert [t["transaction_id"] for t in view["transactions"]] == ["t1"]
        store = BudgetWorker(ddb_settings).store
        assert_matches_fold(store, budget)


def lossy(settings: Settings, limit: int | None) -> tuple[BudgetWorker, Rule]:
    """A facade whose client loses `limit` answers after the server committed them."""
    client = raw_client(settings)
    rule = Rule("TransactWriteItems", Fault.LOSE_RESPONSE, limit=limit)
    FaultInjector([rule], seed=3).install(client)
    return BudgetWorker(settings, client=client), rule  # type: ignore[arg-type]


def test_record_change_survives_lost_answers(ddb_settings: Settings, budget: str) -> None:
    example = load("record_change")
    # How many answers one persist call loses before it gives up with PersistFailed:
    probe, rule = lossy(ddb_settings, limit=None)
    with pytest.raises(Exception, match="outcome is unknown"):
        probe.persist(f"{budget}-probe", "TransactionCreated", "t1", CREATE_T)
    per_call = rule.fired

    # Now every answer of the example's first call is lost, though the server committed.
    budgets, _ = lossy(ddb_settings, limit=per_call)
    result = example.record_change(budgets, budget, "TransactionCreated", "t1", CREATE_T)
    assert result.status is PersistStatus.DUPLICATE  # its own earlier attempt, found
    events = budgets.store.events(budget)
    assert [e.event_id for e in events] == [result.event_id]


def test_show_budget(ddb_settings: Settings, budget: str) -> None:
    example = load("show_budget")
    budgets = BudgetWorker(ddb_settings)
    budgets.persist(budget, "TransactionCreated", "t1", CREATE_T)
    budgets.persist(budget, "TransactionCreated", "t2", {**CREATE_T, "amount": 900})
    lines = example.show_budget(budgets, budget)
    month = CREATE_T["date"][:7]
    assert len([line for line in lines if line.startswith(CREATE_T["date"])]) == 2
    assert f"{month}: being recomputed" in lines  # dirty until the rebuilder runs
    budgets.snapshots(budget, rebuild=True)
    assert f"{month}: net {CREATE_T['amount'] + 900}" in example.show_budget(budgets, budget)
