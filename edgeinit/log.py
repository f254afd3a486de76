"""Log lines to standard error (the journal, under systemd), level from EDGEINIT_LOG_LEVEL.

Deliberately not the `logging` package: importing it (with traceback, string,
threading and weakref behind it) costs more than several of a boot stage's steps,
and edgeinit needs one handler, one format and four levels. Messages use %-style
arguments, like logging's, so they are only formatted when shown.
"""

from __future__ import annotations

import os
import sys
from typing import Any

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
_PREFIX = {DEBUG: "debug: ", INFO: "", WARNING: "warning: ", ERROR: "error: "}


class Log:
    """A minimal leveled logger writing to whatever sys.stderr is at the time."""

    def __init__(self) -> None:
        self.level = INFO

    def setup(self) -> None:
        name = os.environ.get("EDGEINIT_LOG_LEVEL", "info").strip().lower()
        self.level = LEVELS.get(name, INFO)

    def enabled(self, level: int) -> bool:
        return level >= self.level

    def _emit(self, level: int, message: str, args: tuple[Any, ...]) -> None:
        if level < self.level:
            return
        text = message % args if args else message
        try:
            sys.stderr.write(_PREFIX[level] + text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not fail a stage
            pass

    def debug(self, message: str, *args: Any) -> None:
        self._emit(DEBUG, message, args)

    def info(self, message: str, *args: Any) -> None:
        self._emit(INFO, message, args)

    def warning(self, message: str, *args: Any) -> None:
        self._emit(WARNING, message, args)

    def error(self, message: str, *args: Any) -> None:
        self._emit(ERROR, message, args)

    def exception(self, message: str, *args: Any) -> None:
        """An error with the current exception's traceback at debug level."""
        self._emit(ERROR, message, args)
        if self.level <= DEBUG:
            import traceback

            self._emit(DEBUG, "%s", (traceback.format_exc().rstrip(),))


log = Log()


def setup() -> None:
    log.setup()
