"""Logging to standard error (the journal, under systemd), level from EDGEINIT_LOG_LEVEL."""

from __future__ import annotations

import logging
import os
import sys

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}

log = logging.getLogger("edgeinit")


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        return text


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup() -> None:
    """Send edgeinit's log to stderr once; repeated calls only adjust the level."""
    level = LEVELS.get(os.environ.get("EDGEINIT_LOG_LEVEL", "info").strip().lower(), logging.INFO)
    log.setLevel(level)
    if not log.handlers:
        handler = _Stderr(sys.stderr)
        handler.setFormatter(_Format())
        log.addHandler(handler)
        log.propagate = False
