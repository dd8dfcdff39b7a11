"""The scenarios behind tests/test_kcl_e2e.py: `budget-worker run --driver kcl` (the real KCL 3
MultiLangDaemon from the launcher jar `make setup` builds) against DynamoDB Local.

Why a separate process that only records: KCL needs about 80 s to its first lease and minutes
to take over from a lost worker, so the scenarios run in the background from the start of the
test session (tests/conftest.py), overlapping the rest of the suite, and the tests, collected
last, assert on what they recorded (and on the tables, which outlive them). Each flow writes
its observations to a JSON file after every phase; a flow that fails records the error and
stops, and the tests of its later phases fail saying so.

One cohesive concern despite its length (over the ~450-line guideline): the recorded KCL
flows and the phases they share.

Two flows run at once, each with its own tables (its own deployment):

- `main`: one worker (`w1`). A backlog is caught up; live events are applied; the daemon is
  SIGKILLed while a batch's checkpoint is in flight (held by tests/kcl_relay.py) and the
  supervisor's restart re-delivers it; SIGTERM; `replay --trim-horizon` then
  `replay --at-timestamp`, each followed by a start that re-reads.
- `takeover`: `w1` holds the lease (and KCL's leader lock), `w2` joins, `w1`'s whole process
  group is SIGKILLed, events written after the kill are applied by `w2`.

Run by hand: `python -m tests.kcl_scenario FLOW ENDPOINT OUT_DIR`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from tests.helpers import CREATE_T
from worker.config import Settings
from worker.engine import aws
from worker.engine.persist import Persister
from worker.engine.reads import Store
from worker.local.scratch import scratch_tables
from worker.proof.oracle import projection_differences

ROOT = Path(__file__).resolve().parents[1]
LOCAL_PROPERTIES = ROOT / "properties" / "dynamodb-local.properties"
FLOWS = ("main", "takeover")


def now() -> float:
    return time.time()


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> float:
    """Poll until `condition` holds (a bounded wait for a state, not a timing assertion);
    returns the wall-clock time it held, raises naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return now()
        time.sleep(0.5)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting until {what}")


class Observations:
    """The flow's record, rewritten atomically after every phase."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"started_at": now()}
        self.save()

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


class Worker:
    """One `budget-worker run --driver kcl` (the supervisor), in a session of its own so that
    its whole process group (daemon, relays, processors) can be killed at once."""

    def __init__(self, deployment: Deployment, worker_id: str, number: int) -> None:
        self.worker_id = worker_id
        self.log_path = deployment.root / f"run-{worker_id}-{number}.log"
        self.started_at = now()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run", "--driver", "kcl"],
                env=deployment.env(worker_id),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def daemon_pids(self) -> list[int]:
        """The supervisor's children: the java launcher (one at a time)."""
        pids: list[int] = []
        with contextlib.suppress(FileNotFoundError):
            for task in os.listdir(f"/proc/{self.process.pid}/task"):
                with open(f"/proc/{self.process.pid}/task/{task}/children") as f:
                    pids += [int(pid) for pid in f.read().split()]
        return pids

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout: float) -> dict[str, Any]:
        """SIGTERM, as ECS stops a task; the return code and how long the stop took."""
        sent = now()
        self.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.kill_group()
        return {"returncode": code, "seconds": round(now() - sent, 1), "at": sent}


class Deployment:
    """One set of scratch tables, its properties file and the workers run against it."""

    def __init__(self, endpoint: str, root: Path, name: str) -> None:
        self.root = root
        self.settings: Settings = scratch_tables(endpoint, f"kcl-{name}")
        self.store = Store.from_settings(aws.dynamodb(self.settings), self.settings)
        self.client = aws.dynamodb(self.settings)
        self.streams = aws.dynamodb_streams(self.settings)
        self.persister = Persister(self.store)
        self.workers: list[Worker] = []
        self.relay_log = root / "relay.log"

    # -- configuration --------------------------------------------------------------------

    def properties(self, worker_id: str) -> Path:
        """dynamodb-local.properties with this deployment's tables, endpoint, relay and a
        stable `workerId` (a restarted daemon finds its own lease at once instead of waiting
        for the leader to reassign it). Edited by whole key: a text replace of `tableName = `
        would also hit `executableName = `."""
        endpoint = self.settings.endpoint_url or ""
        values = {
            "tableName": self.settings.lease_table,
            "streamName": self.settings.events_table,
            "eventsTableName": self.settings.events_table,
            "dynamoDbEndpoint": endpoint,
            "dynamoDbStreamsEndpoint": endpoint,
            "executableName": f"{sys.executable} {ROOT / 'tests' / 'kcl_relay.py'} {self.root}",
            "workerId": worker_id,
        }
        lines = []
        for line in LOCAL_PROPERTIES.read_text().splitlines():
            key = line.split("=", 1)[0].strip()
            if "=" in line and not line.lstrip().startswith("#") and key in values:
                line = f"{key} = {values.pop(key)}"
            lines.append(line)
        lines += [f"{key} = {value}" for key, value in values.items()]
        path = self.root / f"{worker_id}.properties"
        path.write_text("\n".join(lines) + "\n")
        return path

    def env(self, worker_id: str) -> dict[str, str]:
        env = {
            **os.environ,
            "BUDGET_KCL_PROPERTIES": str(self.properties(worker_id)),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": self.settings.endpoint_url or "",
            "BUDGET_EVENTS_TABLE": self.settings.events_table,
            "BUDGET_PROJECTIONS_TABLE": self.settings.projections_table,
            "BUDGET_LEASE_TABLE": self.settings.lease_table,
            "BUDGET_LOG_FORMAT": "json",
        }
        for name in (
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
            "BUDGET_KCL_APPLICATION_NAME",
            "BUDGET_STREAM_ARN",
            "BUDGET_RETRY_QUEUE_URL",
            "BUDGET_KCL_LAUNCHER_JAR",
        ):
            env.pop(name, None)
        return env

    def start(self, worker_id: str) -> Worker:
        worker = Worker(self, worker_id, len(self.workers))
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.kill_group()

    def replay(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "worker", "replay", *args, "--json"],
            env=self.env("replay"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        return {
            "args": list(args),
            "returncode": done.returncode,
            "stdout": done.stdout,
            "stderr": done.stderr[-2000:],
        }

    # -- data -----------------------------------------------------------------------------

    def persist(self, budgets: list[str], label: str) -> None:
        """One event per budget: a create, an update of it, and a rejected delete in turn."""
        for i, budget in enumerate(budgets):
            kind = ("TransactionCreated", "TransactionUpdated", "TransactionDeleted")[i % 3]
            if kind == "TransactionCreated":
                self.persister.persist(budget, kind, label, {**CREATE_T, "memo": label})
            elif kind == "TransactionUpdated":
                self.persister.persist(budget, kind, "t0", {"memo": label})
            else:
                self.persister.persist(budget, kind, f"missing-{label}", {})

    def backlog(self, budgets: list[str], per_budget: int) -> None:
        for budget in budgets:
            self.persister.persist(budget, "TransactionCreated", "t0", CREATE_T)
        for n in range(1, per_budget):
            self.persist(budgets, f"e{n}")

    # -- what the tests compare -----------------------------------------------------------

    def lease_items(self) -> list[dict[str, Any]]:
        """The lease table as KCL wrote it (plain values)."""
        items = self.client.scan(TableName=self.settings.lease_table, ConsistentRead=True)
        return [
            {key: next(iter(value.values())) for key, value in item.items()}
            for item in items.get("Items", [])
        ]

    def stream_records(self) -> list[dict[str, Any]]:
        """Every record of the events table's stream, read through the streams API: shard,
        sequence number, creation time (what replay and the lease checkpoint refer to)."""
        arn = self.client.describe_table(TableName=self.settings.events_table)["Table"][
            "LatestStreamArn"
        ]
        shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        records = []
        for shard in shards:
            iterator: str | None = self.streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            ).get("ShardIterator")
            while iterator is not None:
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in page.get("Records", []):
                    records.append(
                        {
                            "shard": shard["ShardId"],
                            "sequence": record["dynamodb"]["SequenceNumber"],
                            "created": record["dynamodb"]["ApproximateCreationDateTime"]
                            .astimezone(UTC)
                            .isoformat(),
                        }
                    )
                if not page.get("Records"):
                    break  # an open shard read to its current end
                iterator = page.get("NextShardIterator")
        return records

    def last_sequence(self) -> str | None:
        records = self.stream_records()
        return records[-1]["sequence"] if records else None

    def lease_checkpoint(self) -> str | None:
        items = self.lease_items()
        return str(items[0]["checkpoint"]) if len(items) == 1 else None

    def caught_up(self, budgets: list[str]) -> bool:
        pointers = self.store.pointers(budgets)
        return all(pointers[b] is not None and pointers[b] == self.store.head(b) for b in budgets)

    def checkpointed_to_end(self) -> bool:
        last = self.last_sequence()
        return last is not None and self.lease_checkpoint() == last

    def state(self, budgets: list[str]) -> dict[str, Any]:
        """Everything a test compares: the oracle's verdict per budget (the projections table
        against the pure fold of the event log), pointers and heads, the lease table and the
        stream's records."""
        return {
            "at": now(),
            "problems": {b: projection_differences(self.store, b)[1] for b in budgets},
            "pointers": {b: self.store.pointer(b) for b in budgets},
            "heads": {b: self.store.head(b) for b in budgets},
            "transactions": {
                b: sorted(repr(t) for t in self.store.transactions(b)) for b in budgets
            },
            "leases": self.lease_items(),
            "stream": self.stream_records(),
        }

    def relay_entries(self) -> list[dict[str, Any]]:
        if not self.relay_log.exists():
            return []
        return [json.loads(line) for line in self.relay_log.read_text().splitlines() if line]

    def deliveries(self, since: float) -> list[dict[str, Any]]:
        return [
            e
            for e in self.relay_entries()
            if e["action"] == "processRecords" and e["dir"] == "in" and e["at"] >= since
        ]


def budgets_named(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]


# -- the flows ------------------------------------------------------------------------------


def main_flow(deployment: Deployment, obs: Observations) -> None:
    d = deployment
    budgets = budgets_named("main", 6)
    obs["budgets"] = budgets
    d.backlog(budgets, 4)

    # a. the backlog written before the worker starts
    worker = d.start("w1")
    wait_until(
        lambda: d.caught_up(budgets) and d.checkpointed_to_end(),
        "the backlog is caught up and checkpointed",
        300,
    )
    first = d.deliveries(worker.started_at)
    obs["first_delivery_seconds"] = round(first[0]["at"] - worker.started_at, 1)
    obs["a"] = d.state(budgets)

    # b. live events while it runs
    live = budgets[:3]
    obs["b_persisted_at"] = now()
    d.persist(live, "live")
    wait_until(
        lambda: d.caught_up(budgets) and d.checkpointed_to_end(),
        "the live events are applied and checkpointed",
        120,
    )
    obs["b"] = d.state(budgets)

    # c. SIGKILL the daemon between applying a batch and checkpointing it
    (d.root / "arm").touch()
    d.persist(budgets, "held")
    wait_until(lambda: (d.root / "held").exists(), "the relay holds a checkpoint", 120)
    (d.root / "arm").unlink()
    held = json.loads((d.root / "held").read_text())
    held_batch = next(
        e
        for e in reversed(d.relay_entries())
        if e["pid"] == held["pid"] and e["action"] == "processRecords"
    )
    at_kill = d.state(budgets)
    daemons = worker.daemon_pids()
    killed_at = now()
    for pid in daemons:
        os.kill(pid, signal.SIGKILL)
    obs["c_kill"] = {
        "held": held,
        "held_batch": held_batch,
        "daemon_pids": daemons,
        "supervisor_pid": worker.process.pid,
        "killed_at": killed_at,
        "state": at_kill,
    }

    def redelivered() -> bool:
        return any(
            e["pid"] != held["pid"] and held["sequenceNumber"] in e["sequences"]
            for e in d.deliveries(killed_at)
        )

    wait_until(redelivered, "the held batch is delivered again", 180)
    wait_until(
        lambda: d.caught_up(budgets) and d.checkpointed_to_end(),
        "the re-delivered batch is checkpointed",
        120,
    )
    obs["c"] = {
        "deliveries": d.deliveries(killed_at),
        "supervisor_alive": worker.process.poll() is None,
        "daemon_pids_after": worker.daemon_pids(),
        "state": d.state(budgets),
    }

    # e. SIGTERM: graceful shutdown, the last checkpoint taken in shutdownRequested
    before_stop = now()
    obs["e"] = {
        **worker.terminate(180),
        "exchanges": [e for e in d.relay_entries() if e["at"] >= before_stop],
        "state": d.state(budgets),
    }

    # f. replay against the lease table KCL wrote, then a start that re-reads
    for name, args in (
        ("f_trim", ["--trim-horizon"]),
        ("f_timestamp", ["--at-timestamp", _latest_minute(d)]),
    ):
        before = d.state(budgets)
        replayed = d.replay(*args)
        after_replay = d.lease_items()
        obs[name] = {"replay": replayed, "before": before, "leases_after_replay": after_replay}
        if replayed["returncode"] != 0:
            raise RuntimeError(f"replay {' '.join(args)} failed: {replayed['stderr']}")
        worker = d.start("w1")
        wait_until(
            lambda worker=worker: bool(d.deliveries(worker.started_at)) and d.checkpointed_to_end(),
            "the restarted worker re-reads and checkpoints at the end again",
            240,
        )
        deliveries = d.deliveries(worker.started_at)
        obs[name] = {
            **obs.data[name],
            "started_at": worker.started_at,
            "first_delivery_seconds": round(deliveries[0]["at"] - worker.started_at, 1),
            "deliveries": deliveries,
            "after": d.state(budgets),
            "stop": worker.terminate(180),
        }


def _latest_minute(d: Deployment) -> str:
    """The creation minute of the stream's newest record (DynamoDB Local keeps whole minutes):
    replaying from there re-reads the records of that minute and nothing older."""
    return str(d.stream_records()[-1]["created"])


def takeover_flow(deployment: Deployment, obs: Observations) -> None:
    d = deployment
    budgets = budgets_named("takeover", 4)
    obs["budgets"] = budgets
    d.backlog(budgets, 2)
    first = d.start("w1")
    wait_until(
        lambda: d.caught_up(budgets) and d.checkpointed_to_end(),
        "w1 caught up the backlog",
        300,
    )
    obs["first_delivery_seconds"] = round(
        d.deliveries(first.started_at)[0]["at"] - first.started_at, 1
    )
    second = d.start("w2")
    metrics_table = f"{d.settings.lease_table}-WorkerMetricStats"

    def registered() -> bool:
        items = d.client.scan(TableName=metrics_table).get("Items", [])
        return any("w2" in json.dumps(item) for item in items)

    wait_until(registered, "w2 reports its worker metrics (it can be assigned leases)", 180)
    obs["w2_registered_seconds"] = round(now() - second.started_at, 1)
    holder_id = str(d.lease_items()[0]["leaseOwner"])
    holder, survivor = (first, second) if holder_id == "w1" else (second, first)
    leader = d.client.scan(TableName=f"{d.settings.lease_table}-CoordinatorState").get("Items")
    before_kill = d.state(budgets)
    killed_at = now()
    holder.kill_group()
    late = budgets[:2]
    d.persist(late, "after-kill")
    obs["d_kill"] = {
        "holder": holder_id,
        "survivor": survivor.worker_id,
        "killed_at": killed_at,
        "coordinator_state": leader,
        "state": before_kill,
    }
    reassigned: list[float] = []

    def taken_over() -> bool:
        items = d.lease_items()
        if not reassigned and items and items[0].get("leaseOwner") == survivor.worker_id:
            reassigned.append(now())
        return bool(reassigned) and d.caught_up(budgets) and d.checkpointed_to_end()

    applied_at = wait_until(taken_over, "the survivor applies the events written after", 420)
    obs["d"] = {
        "lease_reassigned_seconds": round(reassigned[0] - killed_at, 1),
        "applied_seconds": round(applied_at - killed_at, 1),
        "survivor_deliveries": d.deliveries(killed_at),
        "state": d.state(budgets),
        "stop": survivor.terminate(180),
    }


def run(flow: str, endpoint: str, out: Path) -> int:
    root = out / flow
    root.mkdir(parents=True, exist_ok=True)
    obs = Observations(out / f"{flow}.json")
    deployment: Deployment | None = None

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    try:
        deployment = Deployment(endpoint, root, flow)
        obs["tables"] = {
            "events": deployment.settings.events_table,
            "projections": deployment.settings.projections_table,
            "leases": deployment.settings.lease_table,
        }
        (main_flow if flow == "main" else takeover_flow)(deployment, obs)
        obs["done"] = True
        return 0
    except BaseException as exc:
        obs["error"] = "".join(traceback.format_exception(exc))
        return 1
    finally:
        obs["finished_at"] = now()
        if deployment is not None:
            deployment.stop_all()


class Background:
    """Both flows as child processes: tests/conftest.py starts them at session start, the
    tests wait for their records."""

    def __init__(self, endpoint: str, out: Path) -> None:
        self.endpoint = endpoint
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        for flow in FLOWS:
            with (out / f"{flow}.stdout").open("wb") as log:
                self.processes[flow] = subprocess.Popen(
                    [sys.executable, "-m", "tests.kcl_scenario", flow, endpoint, str(out)],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

    def result(self, flow: str, timeout: float) -> dict[str, Any]:
        """The flow's record once it finished (bounded wait)."""
        process = self.processes[flow]
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
        path = self.out / f"{flow}.json"
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        if process.returncode is None:
            data.setdefault("error", f"still running after {timeout:.0f} s")
        elif "finished_at" not in data:
            data.setdefault("error", f"exited {process.returncode} without a record")
        data["output_tail"] = (self.out / f"{flow}.stdout").read_text(errors="replace")[-3000:]
        return data

    def stop(self) -> None:
        """SIGTERM (each flow then kills its workers' process groups), then SIGKILL."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
