"""The CLI contract (docs/CLI.md), driven as an outside check would: a subprocess per
command, JSON on stdout, exit codes, one-line reasons on stderr, nothing written on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from worker.config import Settings

CREATE = '{"date": "2026-01-31", "amount": -1250, "account": "checking", "category": "food"}'


class Cli:
    """Runs `python -m worker` (the same entry point as `budget-worker`) as a subprocess."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, stdin: str | None = None, **env: str) -> tuple[int, Any, str]:
        done = subprocess.run(
            [sys.executable, "-m", "worker", *args],
            env={**self.env, **env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        document = None
        if "--json" in args and done.stdout.strip():
            lines = done.stdout.strip().splitlines()
            assert len(lines) == 1, done.stdout  # exactly one JSON document
            document = json.loads(lines[0])
        return done.returncode, document, done.stderr


@pytest.fixture
def cli(ddb_settings: Settings) -> Cli:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": ddb_settings.endpoint_url or "",
        "BUDGET_EVENTS_TABLE": ddb_settings.events_table,
        "BUDGET_PROJECTIONS_TABLE": ddb_settings.projections_table,
        "AWS_REGION": "us-east-1",
    }
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(name, None)
    return Cli(env)


def test_round_trip(cli, budget: str) -> None:
    code, doc, _ = cli("tables", "create", "--json")
    assert code == 0 and doc["created"] == [] and len(doc["existing"]) == 2
    code, put, _ = cli(
        "events",
        "put",
        budget,
        "--type",
        "TransactionCreated",
        "--transaction",
        "t1",
        "--data",
        CREATE,
        "--json",
    )
    assert code == 0 and put["status"] == "created" and put["budget"] == budget
    code, dup, _ = cli(
        "events",
        "put",
        budget,
        "--type",
        "TransactionCreated",
        "--transaction",
        "t1",
        "--data",
        CREATE,
        "--event-id",
        put["event_id"],
        "--json",
    )
    assert (code, dup["status"], dup["event_id"]) == (0, "duplicate", put["event_id"])
    code, ghost, _ = cli(
        "events",
        "put",
        budget,
        "--type",
        "TransactionUpdated",
        "--transaction",
        "nope",
        "--data",
        '{"amount": 5}',
        "--json",
    )
    assert code == 0
    code, status, _ = cli("status", budget, "--json")
    lag = status["budgets"][0].pop("lag_seconds")
    assert 0 <= lag < 600  # the age of the first unapplied event, minted moments ago
    assert status == {
        "budgets": [
            {
                "budget": budget,
                "head": ghost["event_id"],
                "pointer": None,
                "behind": 2,
                "dirty_months": [],
                "rejected": 0,
            }
        ]
    }
    code, _, err = cli("transactions", budget, "--no-catch-up", "--json")
    assert code == 3 and "pointer=none" in err and ghost["event_id"] in err
    assert len(err.strip().splitlines()) == 1
    code, caught, _ = cli("catch-up", budget, "--json")
    assert caught == {
        "budget": budget,
        "applied": 1,
        "rejected": 1,
        "pointer": ghost["event_id"],
        "head": ghost["event_id"],
    }
    code, view, _ = cli("transactions", budget, "--json")
    assert code == 0 and view["as_of_event"] == ghost["event_id"]
    assert view["transactions"] == [
        {
            "transaction_id": "t1",
            "date": "2026-01-31",
            "amount": -1250,
            "account": "checking",
            "category": "food",
            "payee": None,
            "memo": None,
            "last_event_id": put["event_id"],
        }
    ]
    code, rejected, _ = cli("rejected", budget, "--json")
    assert rejected == {
        "budget": budget,
        "rejected": [{"event_id": ghost["event_id"], "reason": "transaction nope does not exist"}],
    }
    code, listed, _ = cli("events", "list", budget, "--json")
    assert listed["head"] == ghost["event_id"]
    assert [e["event_id"] for e in listed["events"]] == [put["event_id"], ghost["event_id"]]
    assert listed["events"][0] == {
        "event_id": put["event_id"],
        "type": "TransactionCreated",
        "transaction_id": "t1",
        "data": json.loads(CREATE),
    }
    code, status, _ = cli("status", "--json")
    mine = [b for b in status["budgets"] if b["budget"] == budget]
    assert mine == [
        {
            "budget": budget,
            "head": ghost["event_id"],
            "pointer": ghost["event_id"],
            "behind": 0,
            "lag_seconds": 0.0,
            "dirty_months": ["2026-01"],
            "rejected": 1,
        }
    ]
    code, behind, _ = cli("status", "--behind", "--json")
    assert code == 0 and budget not in [b["budget"] for b in behind["budgets"]]
    assert all(b["behind"] > 0 for b in behind["budgets"])


def test_reassigned_put_reports_requested_id(cli, budget: str) -> None:
    cli(
        "events",
        "put",
        budget,
        "--type",
        "TransactionCreated",
        "--transaction",
        "t1",
        "--data",
        CREATE,
        "--json",
    )
    old = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
    code, doc, _ = cli(
        "events",
        "put",
        budget,
        "--type",
        "TransactionDeleted",
        "--transaction",
        "t1",
        "--event-id",
        old,
        "--json",
    )
    assert code == 0 and doc["status"] == "reassigned" and doc["requested_event_id"] == old


BAD_PUTS = [
    (["--type", "TransactionCreated", "--transaction", "t1", "--data", "{bad json"], "JSON"),
    (["--type", "Nope", "--transaction", "t1", "--data", CREATE], "unknown event type"),
    (
        [
            "--type",
            "TransactionCreated",
            "--transaction",
            "t1",
            "--data",
            CREATE,
            "--event-id",
            "123",
        ],
        "event id",
    ),
    (
        [
            "--type",
            "TransactionCreated",
            "--transaction",
            "t1",
            "--data",
            CREATE.replace("-1250", "-12.5"),
        ],
        "integer",
    ),
    (
        [
            "--type",
            "TransactionCreated",
            "--transaction",
            "t1",
            "--data",
            CREATE.replace("2026-01-31", "2026-13-01"),
        ],
        "date",
    ),
    (["--type", "TransactionCreated", "--transaction", "t1", "--data", '{"amount": 1}'], "missing"),
    (["--type", "TransactionCreated", "--transaction", "x" * 200, "--data", CREATE], "longer"),
    (
        [
            "--type",
            "TransactionCreated",
            "--transaction",
            "t1",
            "--data",
            '{"memo": "' + "m" * 17000 + '"}',
        ],
        "16384",
    ),
    (["--transaction", "t1"], "required"),
]


@pytest.mark.parametrize(("args", "reason"), BAD_PUTS)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(cli, budget, args, reason) -> None:
    code, _, err = cli("events", "put", budget, *args, "--json")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and reason in err
    _, listed, _ = cli("events", "list", budget, "--json")
    assert listed == {"budget": budget, "head": None, "events": []}


def test_conflicting_content_for_an_id_exits_2(cli, budget: str) -> None:
    code, put, _ = cli(
        "events",
        "put",
        budget,
        "--type",
        "TransactionCreated",
        "--transaction",
        "t1",
        "--data",
        CREATE,
        "--json",
    )
    code, _, err = cli(
        "events",
        "put",
        budget,
        "--type",
        "TransactionDeleted",
        "--transaction",
        "t1",
        "--event-id",
        put["event_id"],
        "--json",
    )
    assert code == 2 and "different content" in err


def test_import_reports_each_line(cli, budget: str, tmp_path) -> None:
    good = {
        "budget": budget,
        "type": "TransactionCreated",
        "transaction_id": "t1",
        "data": json.loads(CREATE),
        "event_id": "01JD0000000000000000000001",
    }
    lines = [
        json.dumps(good),
        json.dumps(good),  # duplicate
        "not json",
        json.dumps({**good, "event_id": None, "type": "Bogus"}),
        "",
        json.dumps(
            {
                **good,
                "event_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
                "type": "TransactionDeleted",
                "data": {},
            }
        ),  # behind the head: reassigned
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, doc, _ = cli("events", "import", str(path), "--json")
    assert code == 2
    assert (doc["imported"], doc["duplicate"], doc["reassigned"]) == (1, 1, 1)
    assert [f["line"] for f in doc["failed"]] == [3, 4]
    code, doc, _ = cli("events", "import", "-", "--json", stdin=json.dumps(good) + "\n")
    assert code == 0 and doc == {"imported": 0, "duplicate": 1, "reassigned": 0, "failed": []}


def test_missing_tables_is_an_infrastructure_error(cli: Cli, budget: str) -> None:
    code, _, err = cli("events", "list", budget, "--json", BUDGET_EVENTS_TABLE=f"missing-{budget}")
    assert code == 1
    assert "tables create" in err and len(err.strip().splitlines()) == 1


def test_unreachable_dynamodb_is_an_infrastructure_error(cli: Cli, budget: str) -> None:
    from worker.local.dynamodb_local import free_port

    code, _, err = cli(
        "status", budget, "--json", AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"
    )
    assert code == 1 and "failed after" in err


def test_snapshots_command(cli: Cli, budget: str) -> None:
    for tid, data in [
        ("t1", CREATE),
        ("t2", CREATE.replace("2026-01-31", "2026-03-01").replace("-1250", "5000")),
    ]:
        cli(
            "events",
            "put",
            budget,
            "--type",
            "TransactionCreated",
            "--transaction",
            tid,
            "--data",
            data,
            "--json",
        )
    cli("catch-up", budget, "--json")
    code, before, _ = cli("snapshots", budget, "--json")
    assert code == 0 and before["dirty_months"] == ["2026-01", "2026-03"]
    assert all(s["fresh"] is False for s in before["snapshots"])
    code, after, _ = cli("snapshots", budget, "--rebuild", "--json")
    assert after["budget"] == budget and after["dirty_months"] == []
    assert [s["month"] for s in after["snapshots"]] == ["2026-01", "2026-02", "2026-03"]
    jan, feb, mar = after["snapshots"]
    assert {
        k: jan[k]
        for k in ("income", "expenses", "net", "by_category", "balances", "transaction_count")
    } == {
        "income": 0,
        "expenses": -1250,
        "net": -1250,
        "by_category": {"food": -1250},
        "balances": {"checking": -1250},
        "transaction_count": 1,
    }
    assert feb["transaction_count"] == 0 and feb["balances"] == {"checking": -1250}
    assert mar["balances"] == {"checking": 3750} and mar["income"] == 5000
    assert all(s["fresh"] and s["as_of_event"] for s in after["snapshots"])


def test_people_see_amounts_with_two_decimals_and_json_keeps_minor_units(cli, budget) -> None:
    data = '{"date": "2026-10-05", "amount": -5830, "account": "card", "category": "groceries"}'
    put = ("events", "put", budget, "--type", "TransactionCreated", "--transaction", "t1")
    assert cli(*put, "--data", data)[0] == 0
    code, doc, _ = cli("transactions", budget, "--json")
    assert code == 0 and doc["transactions"][0]["amount"] == -5830
    code, snaps, _ = cli("snapshots", budget, "--rebuild", "--json")
    assert code == 0 and snaps["snapshots"][0]["expenses"] == -5830

    def human(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "worker", *args],
            env={**cli.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = human("transactions", budget)
    assert "-58.30" in shown and "-5830" not in shown
    shown = human("snapshots", budget)
    assert "-58.30" in shown and "card -58.30" in shown and "-5830" not in shown
