"""structlog set-up: JSON lines when not on a terminal (production, CI), pretty on a terminal.

Logs go to stderr: stdout belongs to `--json` documents and to the MultiLang protocol. The one
exception is `kcl-processor` under a supervisor (`configure_child`): the KCL daemon re-logs every
stderr line of its children as an ERROR, so the child sends its log lines to the supervisor's
channel instead (`BUDGET_SUPERVISOR_CHANNEL`, see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any, TextIO

import structlog

from worker.config import SUPERVISOR_CHANNEL_ENV, ToolSettings

# Path of the unix datagram socket `run` listens on; every datagram is one JSON document.
CHANNEL_ENV = SUPERVISOR_CHANNEL_ENV

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def configure(default_level: str = "warning", *, json_lines: bool | None = None) -> None:
    """Configure structlog once per process. `BUDGET_LOG_LEVEL` and `BUDGET_LOG_FORMAT`
    (`json` or `console`) override the defaults."""
    tools = ToolSettings.from_env()
    level = LEVELS.get((tools.log_level or default_level).lower(), logging.INFO)
    fmt = tools.log_format
    if json_lines is None:
        json_lines = fmt == "json" or (fmt != "console" and not sys.stderr.isatty())
    structlog.configure(
        processors=_processors(json_lines),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def configure_child(default_level: str = "info") -> None:
    """Logging for `kcl-processor`, whose stderr the KCL daemon logs as ERROR lines.

    With `BUDGET_SUPERVISOR_CHANNEL` set (by `run`), every line goes to the supervisor as JSON,
    which logs it with its own level. Without it (or when the supervisor cannot take a line),
    only warnings and errors are written to stderr: an ERROR line in the daemon's log then
    means something worth reading. `BUDGET_LOG_LEVEL` still filters.
    """
    tools = ToolSettings.from_env()
    level = LEVELS.get((tools.log_level or default_level).lower(), logging.INFO)
    channel = ChannelLogger(tools.supervisor_channel, sys.stderr)
    structlog.configure(
        processors=[_add_pid, *_processors(json_lines=True)],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_args: channel,
        cache_logger_on_first_use=False,
    )


def _add_pid(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    event_dict.setdefault("pid", os.getpid())
    return event_dict


def _processors(json_lines: bool) -> list[structlog.typing.Processor]:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        (
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
            if json_lines
            else structlog.dev.set_exc_info
        ),
        renderer,
    ]


class ChannelLogger:
    """A structlog logger sending each rendered line as one datagram to the supervisor's unix
    socket (a datagram is never interleaved with another child's, whatever its size). Sends
    never block: a line the supervisor cannot take right now falls back to stderr if it is a
    warning or an error, and is dropped otherwise (a log line must not stall a shard)."""

    def __init__(self, path: str | None, fallback: TextIO) -> None:
        self._path = path
        self._fallback = fallback
        self._socket: socket.socket | None = None
        if path is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)

    def send(self, line: str) -> bool:
        """Hand one JSON document to the supervisor; False if it could not take it."""
        if self._socket is None or self._path is None:
            return False
        try:
            self._socket.sendto(line.encode("utf-8"), self._path)
        except OSError:  # no supervisor listening, its queue full, a line too long
            return False
        return True

    def _quiet(self, message: str) -> None:
        self.send(message)

    def _loud(self, message: str) -> None:
        if not self.send(message):
            self._fallback.write(message + "\n")
            self._fallback.flush()

    debug = info = _quiet
    msg = log = warning = warn = error = err = critical = exception = fatal = failure = _loud


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
