"""structlog set-up: JSON lines when not on a terminal (production, CI), pretty on a terminal.

Logs always go to stderr: stdout belongs to `--json` documents and to the MultiLang protocol.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

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
    level_name = os.environ.get("BUDGET_LOG_LEVEL", default_level).lower()
    level = LEVELS.get(level_name, logging.INFO)
    fmt = os.environ.get("BUDGET_LOG_FORMAT", "").lower()
    if json_lines is None:
        json_lines = fmt == "json" or (fmt != "console" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
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
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
