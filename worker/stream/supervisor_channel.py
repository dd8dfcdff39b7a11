"""The channel through which `kcl-processor` children talk to `run`, beside the MultiLang protocol.

A child's stdout is the protocol and the KCL daemon logs each of its stderr lines as an ERROR,
so `run` listens on a unix datagram socket in a private directory and hands its path to the
daemon's children (`BUDGET_SUPERVISOR_CHANNEL`, inherited through the daemon's environment;
a file descriptor would not survive the JVM, which closes every descriptor above 2 in the
processes it spawns). Every datagram is one JSON document: atomic however many children send
at once, and generic, so log lines today and metric figures tomorrow share the channel.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from worker import logs

log = logs.get(__name__)

# Larger than the biggest datagram a child can send (the socket's send buffer, ~208 KiB).
MAX_DATAGRAM = 1 << 20

Handler = Callable[[dict[str, Any]], None]


class SupervisorChannel:
    """Receives the children's JSON documents on a thread and hands each to `handle`."""

    def __init__(self, handle: Handler) -> None:
        self._handle = handle
        self._dir = Path(tempfile.mkdtemp(prefix="budget-worker-"))
        self.path = str(self._dir / "channel.sock")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)
        self._socket.settimeout(0.2)  # how soon `close` is noticed
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._receive, name="supervisor-channel", daemon=True
        )
        self._thread.start()

    def _receive(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._socket.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            self._dispatch(data)
        # Whatever was queued before close still gets handled.
        self._socket.setblocking(False)
        while True:
            try:
                data = self._socket.recv(MAX_DATAGRAM)
            except OSError:
                return
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        try:
            document = json.loads(data)
        except ValueError:
            log.warning(
                "non-JSON datagram on the supervisor channel",
                data=data[:200].decode("utf-8", "replace"),
            )
            return
        if not isinstance(document, dict):
            log.warning(
                "non-object document on the supervisor channel", document=str(document)[:200]
            )
            return
        try:
            self._handle(document)
        except Exception:  # a bad document must not end the channel
            log.exception("could not handle a document from a child")

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
        self._socket.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> SupervisorChannel:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()


def forward(document: dict[str, Any], *, output: TextIO | None = None) -> None:
    """What `run` does with a child's document. A log line (`event` and `level`) is logged
    again by `run` at that level, so it reaches the container log as what it is, in `run`'s
    format and filtered by its level. Anything else is written as one JSON line on `run`'s
    stdout (the place CloudWatch Embedded Metric Format documents go)."""
    if "event" in document and "level" in document:
        fields = dict(document)
        level = logs.LEVELS.get(str(fields.pop("level")).lower(), logging.INFO)
        event = str(fields.pop("event"))
        fields.pop("timestamp", None)  # `run` stamps it again on arrival
        fields.setdefault("source", "kcl-processor")
        if not isinstance(fields.get("exception", ""), str):
            # The child's structured traceback: text, which every renderer of `run` accepts.
            fields["exception"] = json.dumps(fields["exception"], indent=1)
        logs.get("kcl-processor").log(level, event, **fields)
        return
    out = sys.stdout if output is None else output
    out.write(json.dumps(document, separators=(",", ":")) + "\n")
    out.flush()
