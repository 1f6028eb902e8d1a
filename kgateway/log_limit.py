"""
Log lines a stranger can cause, bounded.

A client can open a million connections, each with a bad frame, or leave a
million half-sent requests to time out; every one is worth a line, but not
a million lines.  A L{LogLimiter} lets through at most C{burst} lines of
each kind (its format string) per C{interval} seconds, and the first line
let through after some were left out says how many, so nothing vanishes
without a count.  Kinds are format strings from the code, so the limiter's
memory is bounded by the code, not by what clients send.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger, LogLevel


@dataclass(slots=True)
class _Kind:
    window_started: float
    lines: int = 0
    left_out: int = 0


class LogLimiter:
    """At most C{burst} lines of each kind per C{interval} seconds; the rest counted."""

    def __init__(
        self,
        log: Logger,
        burst: int = 20,
        interval: float = 10.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._burst = burst
        self._interval = interval
        self._now = now
        self._kinds: dict[str, _Kind] = {}
        #: Lines left out, over the limiter's life.
        self.left_out = 0

    def emit(self, level: LogLevel, format: str, **fields: Any) -> bool:
        """Log one line of kind C{format}, unless its kind is over the limit; whether it was."""
        now = self._now()
        kind = self._kinds.get(format)
        if kind is None:
            kind = self._kinds[format] = _Kind(now)
        elif now - kind.window_started >= self._interval:
            kind.window_started = now
            kind.lines = 0
        if kind.lines >= self._burst:
            kind.left_out += 1
            self.left_out += 1
            return False
        kind.lines += 1
        if kind.left_out:
            fields["left_out"] = kind.left_out
            kind.left_out = 0
            format += " ({left_out} more like this were not logged)"
        self._log.emit(level, format, **fields)
        return True

    def warn(self, format: str, **fields: Any) -> bool:
        """A warning, within the limit."""
        return self.emit(LogLevel.warn, format, **fields)

    def info(self, format: str, **fields: Any) -> bool:
        """An informational line, within the limit."""
        return self.emit(LogLevel.info, format, **fields)

    def debug(self, format: str, **fields: Any) -> bool:
        """A debug line, within the limit."""
        return self.emit(LogLevel.debug, format, **fields)
