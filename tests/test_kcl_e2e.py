"""End to end with the real KCL 3 daemon: `budget-worker run --driver kcl` runs the launcher
jar `make setup` built (MultiLangDaemon + DynamoDB Streams Kinesis Adapter) against DynamoDB
Local, and KCL spawns the real `kcl-processor` (behind tests/kcl_relay.py, which logs the
protocol and can hold one checkpoint).

The scenarios run in the background from the session's start (tests/kcl_scenario.py,
tests/conftest.py); these tests, collected last, assert on what they recorded at each phase and
on the tables: every budget's projection against the pure fold of its event log, the lease
table as KCL wrote it, and the stream read through DynamoDB Local's streams API."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_matches_fold
from tests.kcl_scenario import Background
from worker.config import Settings
from worker.engine import aws
from worker.engine.reads import Store

pytestmark = [pytest.mark.ddb_local, pytest.mark.kcl_e2e, pytest.mark.timeout(900)]

# Bounds on waiting for a flow (they run alongside the rest of the suite): generous against
# the ~5.5 min they take on a loaded 2-core machine.
FLOW_TIMEOUT = 840.0


@pytest.fixture(scope="module")
def main(kcl_scenarios: Background) -> dict[str, Any]:
    return kcl_scenarios.result("main", FLOW_TIMEOUT)


@pytest.fixture(scope="module")
def takeover(kcl_scenarios: Background) -> dict[str, Any]:
    return kcl_scenarios.result("takeover", FLOW_TIMEOUT)


def phase(record: dict[str, Any], key: str) -> Any:
    if key not in record:
        pytest.fail(
            f"the scenario stopped before phase {key!r}:\n{record.get('error')}\n"
            f"{record.get('output_tail', '')}"
        )
    return record[key]


def store_of(record: dict[str, Any], endpoint: str) -> Store:
    tables = record["tables"]
    settings = Settings(
        events_table=tables["events"],
        projections_table=tables["projections"],
        lease_table=tables["leases"],
        endpoint_url=endpoint,
        streams_endpoint_url=endpoint,
    )
    return Store.from_settings(aws.dynamodb(settings), settings)


def assert_consistent(state: dict[str, Any]) -> None:
    """At that moment: every budget equal to the fold and at its head, and the one lease
    checkpointed at the shard's last record."""
    assert all(problems == [] for problems in state["problems"].values()), state["problems"]
    assert all(p is not None for p in state["pointers"].values())
    assert state["pointers"] == state["heads"]
    (lease,) = state["leases"]
    shards = {r["shard"] for r in state["stream"]}
    assert shards == {lease["leaseKey"]}
    assert lease["checkpoint"] == state["stream"][-1]["sequence"]


def sequences(deliveries: list[dict[str, Any]]) -> list[str]:
    return [s for d in deliveries for s in d["sequences"]]


def catch_ups_after(log_dir: Path, moment: float) -> list[dict[str, Any]]:
    """`budget caught up` lines the kcl-processors logged (through `run`) after `moment`."""
    lines = []
    for log in sorted(log_dir.glob("run-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if '"budget caught up"' not in line or not line.startswith("{"):
                continue
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
            if at >= moment:
                lines.append(entry)
    return lines


def test_a_backlog_is_caught_up_and_checkpointed_at_the_last_record(
    main: dict[str, Any], ddb_endpoint: str
) -> None:
    a = phase(main, "a")
    assert_consistent(a)
    assert a["leases"][0]["leaseOwner"] == "w1"
    assert len(a["stream"]) >= 4 * len(main["budgets"])  # the backlog, read through the API
    print(f"KCL: first records delivered {main['first_delivery_seconds']} s after start")
    store = store_of(main, ddb_endpoint)
    for budget in main["budgets"]:  # and still so at the end, after everything below
        assert_matches_fold(store, budget)
        assert store.pointer(budget) == store.head(budget)


def test_b_live_events_are_applied(main: dict[str, Any]) -> None:
    a, b = phase(main, "a"), phase(main, "b")
    assert_consistent(b)
    live = main["budgets"][:3]
    assert all(b["pointers"][x] > a["pointers"][x] for x in live)  # their new events applied
    assert b["leases"][0]["checkpoint"] > a["leases"][0]["checkpoint"]


def test_c_daemon_killed_between_apply_and_checkpoint_redelivers_the_batch(
    main: dict[str, Any], kcl_scenarios: Background
) -> None:
    kill, after = phase(main, "c_kill"), phase(main, "c")
    held, batch, at_kill = kill["held"], kill["held_batch"], kill["state"]
    # The processor asked to checkpoint the batch's last record; the daemon never heard it.
    assert held["sequenceNumber"] == batch["sequences"][-1]
    assert int(at_kill["leases"][0]["checkpoint"]) < int(batch["sequences"][0])
    # ... after the batch was applied: its budgets were at their heads, all equal to the fold.
    assert batch["budgets"] and set(batch["budgets"]) <= set(main["budgets"])
    assert all(problems == [] for problems in at_kill["problems"].values())
    assert all(at_kill["pointers"][b] == at_kill["heads"][b] for b in batch["budgets"])
    # The supervisor survived and started a new daemon, which delivered the batch again.
    assert after["supervisor_alive"]
    assert after["daemon_pids_after"] and set(after["daemon_pids_after"]).isdisjoint(
        kill["daemon_pids"]
    )
    again = [d for d in after["deliveries"] if d["pid"] != held["pid"]]
    assert set(batch["sequences"]) <= set(sequences(again))
    seconds = round(again[0]["at"] - kill["killed_at"], 1)
    print(f"KCL: the held batch was delivered again {seconds} s after the SIGKILL")
    # Nothing applied twice: the re-delivered budgets were current, each catch-up applied 0.
    redone = catch_ups_after(kcl_scenarios.out / "main", kill["killed_at"])
    redone = [c for c in redone if c["budget"] in batch["budgets"]]
    assert {c["budget"] for c in redone} == set(batch["budgets"])
    first_redo = {}
    for entry in redone:
        first_redo.setdefault(entry["budget"], entry)
    assert all(entry["applied"] == 0 for entry in first_redo.values()), first_redo
    # Nothing lost: all equal to the fold, the lease checkpointed at the end.
    assert_consistent(after["state"])
    assert all(after["state"]["pointers"][b] == at_kill["pointers"][b] for b in batch["budgets"])


def test_d_survivor_takes_over_from_the_checkpoint_after_the_holder_is_killed(
    takeover: dict[str, Any], ddb_endpoint: str
) -> None:
    kill, d = phase(takeover, "d_kill"), phase(takeover, "d")
    # w1 started first: it held the lease and KCL's leader lock when its task was killed.
    assert (kill["holder"], kill["survivor"]) == ("w1", "w2")
    (lock,) = [i for i in kill["coordinator_state"] if i["key"] == {"S": "Leader"}]
    assert lock["ownerName"] == {"S": "w1"}
    checkpoint = kill["state"]["leases"][0]["checkpoint"]
    assert checkpoint == kill["state"]["stream"][-1]["sequence"]  # all read before the kill
    assert_consistent(d["state"])
    assert d["state"]["leases"][0]["leaseOwner"] == "w2"
    # The survivor resumed right after the dead holder's checkpoint and read what came after.
    written_after = [r["sequence"] for r in d["state"]["stream"] if r["sequence"] > checkpoint]
    delivered = sequences(d["survivor_deliveries"])
    assert written_after and delivered[: len(written_after)] == written_after
    late = takeover["budgets"][:2]
    assert all(d["state"]["pointers"][b] > kill["state"]["pointers"][b] for b in late)
    assert d["stop"]["returncode"] == 0
    print(
        f"KCL: lease reassigned {d['lease_reassigned_seconds']} s and later events applied "
        f"{d['applied_seconds']} s after the holder was killed"
    )
    store = store_of(takeover, ddb_endpoint)
    for budget in takeover["budgets"]:
        assert_matches_fold(store, budget)


def test_e_sigterm_checkpoints_in_shutdown_requested_and_exits_0(main: dict[str, Any]) -> None:
    e = phase(main, "e")
    assert e["returncode"] == 0
    exchange = [
        (x["dir"], x["action"], x.get("sequenceNumber"), x.get("error"))
        for x in e["exchanges"]
        if x["action"] in ("shutdownRequested", "checkpoint")
    ]
    assert exchange[:3] == [
        ("in", "shutdownRequested", None, None),
        ("out", "checkpoint", None, None),  # "everything delivered"
        ("in", "checkpoint", None, None),  # taken, no error
    ]
    delivered = sequences(phase(main, "c")["deliveries"])
    assert e["state"]["leases"][0]["checkpoint"] == max(delivered)  # the last record processed
    assert_consistent(e["state"])


def _assert_reread_changed_nothing(f: dict[str, Any]) -> None:
    assert f["after"]["pointers"] == f["before"]["pointers"]
    assert f["after"]["transactions"] == f["before"]["transactions"]
    assert_consistent(f["after"])
    assert f["stop"]["returncode"] == 0


def test_f_replay_trim_horizon_on_the_kcl_lease_table_re_reads_everything(
    main: dict[str, Any],
) -> None:
    f = phase(main, "f_trim")
    replayed = f["replay"]
    assert replayed["returncode"] == 0, replayed["stderr"]  # not refused after a clean stop
    (shard,) = json.loads(replayed["stdout"])["shards"]
    stream = [r["sequence"] for r in f["before"]["stream"]]
    assert (shard["old"], shard["new"]) == (stream[-1], "TRIM_HORIZON")
    (lease,) = f["leases_after_replay"]
    assert lease["checkpoint"] == "TRIM_HORIZON" and "leaseOwner" not in lease
    assert sequences(f["deliveries"])[: len(stream)] == stream  # re-read from the first record
    _assert_reread_changed_nothing(f)


def test_f_replay_at_timestamp_re_reads_from_that_moment(main: dict[str, Any]) -> None:
    f = phase(main, "f_timestamp")
    replayed = f["replay"]
    assert replayed["returncode"] == 0, replayed["stderr"]
    moment = datetime.fromisoformat(replayed["args"][1])
    stream = f["before"]["stream"]
    older = [r["sequence"] for r in stream if datetime.fromisoformat(r["created"]) < moment]
    newer = [r["sequence"] for r in stream if datetime.fromisoformat(r["created"]) >= moment]
    expected = older[-1] if older else "TRIM_HORIZON"
    (shard,) = json.loads(replayed["stdout"])["shards"]
    assert shard["new"] == expected
    assert f["leases_after_replay"][0]["checkpoint"] == expected
    assert sequences(f["deliveries"])[: len(newer)] == newer  # from that moment on, in order
    assert not set(older) & set(sequences(f["deliveries"]))  # nothing older
    _assert_reread_changed_nothing(f)
