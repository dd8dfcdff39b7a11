"""The daemon side of the KCL MultiLang protocol, for the local stream driver and the tests.

The MultiLangDaemon talks to its child (`budget-worker kcl-processor`) with one JSON object per
line: it sends an action (initialize, processRecords, leaseLost, shardEnded,
shutdownRequested), the child may answer processRecords/shardEnded/shutdownRequested with
checkpoint requests (each answered by a checkpoint message, with `error` set if it failed), and
finally reports `{"action": "status", "responseFor": <action>}`. Lines that are not JSON (a
library printing to stdout) are ignored, as the Java daemon does.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from worker import logs

log = logs.get(__name__)

# (sequence number or None for "end of what was delivered"/SHARD_END, sub sequence number)
# -> error name, or None when the checkpoint was taken.
CheckpointHandler = Callable[[str | None, int | None], str | None]


class ChildFailed(Exception):
    """The child process exited or broke the protocol; the shard must be restarted from its
    last checkpoint."""


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """A record as the MultiLangDaemon hands it to the child."""

    data_b64: str
    partition_key: str
    sequence_number: str
    approximate_arrival_ms: int
    sub_sequence_number: int = 0

    def as_message(self) -> dict[str, Any]:
        return {
            "action": "record",
            "data": self.data_b64,
            "partitionKey": self.partition_key,
            "sequenceNumber": self.sequence_number,
            "subSequenceNumber": self.sub_sequence_number,
            "approximateArrivalTimestamp": self.approximate_arrival_ms,
        }


class MultiLangChild:
    """One child process speaking the MultiLang protocol over its stdin/stdout."""

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        stderr: IO[bytes] | int | None = None,
    ) -> None:
        self.command = list(command)
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            bufsize=1,
            # Own session: a Ctrl-C or SIGTERM to the driver's group must reach the driver
            # only, which then shuts each child down gracefully (shutdownRequested).
            start_new_session=True,
        )
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ChildFailed(f"child {self.pid} stdin closed: {exc}") from exc

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                code = self.process.wait()
                raise ChildFailed(f"child {self.pid} exited with {code}")
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                log.debug("ignoring non-protocol output from child", line=line[:200])
                continue
            if isinstance(message, dict) and "action" in message:
                return message

    def call(self, message: dict[str, Any], on_checkpoint: CheckpointHandler | None = None) -> None:
        """Send one action and serve checkpoint requests until the child reports it done."""
        with self._lock:
            action = message["action"]
            self.send(message)
            while True:
                reply = self.receive()
                kind = reply.get("action")
                if kind == "status":
                    if reply.get("responseFor") != action:
                        raise ChildFailed(
                            f"status for {reply.get('responseFor')!r}, expected {action!r}"
                        )
                    return
                if kind == "checkpoint":
                    sequence = reply.get("sequenceNumber")
                    sub = reply.get("subSequenceNumber")
                    error = (
                        "InvalidStateException"
                        if on_checkpoint is None
                        else on_checkpoint(sequence, sub)
                    )
                    self.send(
                        {
                            "action": "checkpoint",
                            "sequenceNumber": sequence,
                            "subSequenceNumber": sub,
                            "error": error,
                        }
                    )
                    continue
                raise ChildFailed(f"unexpected message from child: {kind!r}")

    def initialize(self, shard_id: str, sequence_number: str | None) -> None:
        self.call(
            {
                "action": "initialize",
                "shardId": shard_id,
                "sequenceNumber": sequence_number,
                "subSequenceNumber": 0,
            }
        )

    def process_records(
        self, records: Sequence[StreamRecord], millis_behind: int, on_checkpoint: CheckpointHandler
    ) -> None:
        self.call(
            {
                "action": "processRecords",
                "millisBehindLatest": millis_behind,
                "records": [r.as_message() for r in records],
            },
            on_checkpoint,
        )

    def shard_ended(self, on_checkpoint: CheckpointHandler) -> None:
        self.call({"action": "shardEnded"}, on_checkpoint)

    def shutdown_requested(self, on_checkpoint: CheckpointHandler) -> None:
        self.call({"action": "shutdownRequested"}, on_checkpoint)

    def lease_lost(self) -> None:
        self.call({"action": "leaseLost"})

    def close(self, timeout: float = 10.0) -> int:
        """Close stdin (the child's main loop ends at EOF) and wait for it to exit."""
        try:
            if self.process.stdin:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
