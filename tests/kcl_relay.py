"""A test-only MultiLang executable: the real KCL daemon spawns this instead of
`budget-worker kcl-processor`, and it runs the real processor behind a transparent relay.

Why: the end-to-end tests (tests/test_kcl_e2e.py) must see what the daemon delivered
(`processRecords` with its sequence numbers: proof of re-delivery after a crash or a replay)
and must be able to kill the daemon at one exact moment, after the processor applied a batch
and before the daemon recorded its checkpoint. The relay logs every protocol message it passes,
one JSON line each in `<control>/relay.log` (several relays append; each line names its pid),
and, while `<control>/arm` exists, holds the first processor `checkpoint` request that names a
sequence number: it creates `<control>/held` (once, exclusively) and forwards nothing more, so
the test can SIGKILL the daemon while the checkpoint is in flight. Later relays (after the
daemon's restart) see `held` and pass everything through.

Usage (as the properties' `executableName`): `python tests/kcl_relay.py CONTROL_DIR`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any


def summary(direction: str, message: dict[str, Any]) -> dict[str, Any]:
    """What a test needs of one protocol message (records reduced to sequence numbers)."""
    entry: dict[str, Any] = {
        "pid": os.getpid(),
        "at": time.time(),
        "dir": direction,
        "action": message.get("action"),
    }
    if message.get("action") == "processRecords":
        records = message.get("records", [])
        entry["sequences"] = [r.get("sequenceNumber") for r in records]
        entry["budgets"] = sorted({b for r in records if (b := _budget(r)) is not None})
    for key in ("shardId", "sequenceNumber", "responseFor", "error"):
        if key in message:
            entry[key] = message[key]
    return entry


def _budget(record: dict[str, Any]) -> str | None:
    from worker.errors import InvalidInput
    from worker.stream.records import budget_of

    try:
        return budget_of(record.get("data", ""))
    except InvalidInput:
        return None


class Relay:
    def __init__(self, control: Path) -> None:
        self.control = control
        self.log_lock = threading.Lock()
        self.log_file = (control / "relay.log").open("a", encoding="utf-8")

    def log(self, direction: str, line: str) -> dict[str, Any] | None:
        try:
            message = json.loads(line)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        with self.log_lock:
            self.log_file.write(json.dumps(summary(direction, message)) + "\n")
            self.log_file.flush()
        return message

    def should_hold(self, message: dict[str, Any]) -> bool:
        """The first checkpoint of a batch while armed: claim `held` exclusively, so exactly
        one relay (of all the daemon's lives) ever holds one."""
        if message.get("action") != "checkpoint" or message.get("sequenceNumber") is None:
            return False
        if not (self.control / "arm").exists():
            return False
        try:
            fd = os.open(self.control / "held", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, json.dumps({"pid": os.getpid(), **message}).encode())
        os.close(fd)
        return True

    def pump_in(self, source: IO[str], sink: IO[str]) -> None:
        """Daemon to processor; at the daemon's end (EOF: it exited or was killed) the
        processor's stdin closes too, and it exits as it would under the daemon."""
        for line in source:
            self.log("in", line)
            try:
                sink.write(line)
                sink.flush()
            except BrokenPipeError:
                break
        sink.close()

    def pump_out(self, source: IO[str], sink: IO[str]) -> None:
        holding = False
        for line in source:
            message = self.log("out", line)
            if holding:
                continue
            if message is not None and self.should_hold(message):
                holding = True  # swallow it and everything after: the daemon never hears
                continue
            try:
                sink.write(line)
                sink.flush()
            except BrokenPipeError:  # the daemon is gone
                return


def main() -> int:
    control = Path(sys.argv[1])
    relay = Relay(control)
    child = subprocess.Popen(
        [sys.executable, "-m", "worker", "kcl-processor"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert child.stdin is not None and child.stdout is not None
    inbound = threading.Thread(
        target=relay.pump_in, args=(sys.stdin, child.stdin), daemon=True, name="in"
    )
    inbound.start()
    relay.pump_out(child.stdout, sys.stdout)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
