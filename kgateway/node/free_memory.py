"""
Give the memory freed after a burst back to the operating system.

The frames a node holds whole arrive as reads of up to 64 KiB, which glibc
serves from its heap rather than with mmap; once they are freed the heap
has holes, and the process's resident size stays at its peak although
nothing uses it (20 partial frames held, then closed, left a node at its
peak RSS).  glibc's C{malloc_trim(0)} returns every free page of every
arena.  It takes a while on a large heap (tens of ms), so it runs in a
thread of its own (ctypes lets go of the GIL for the call), at most one at
a time, and only after the budget saw a burst drain (L{MemoryBudget}'s
C{on_drained}).  Where there is no glibc, it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable

from twisted.logger import Logger

log = Logger()


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (musl, macOS): nothing to do
    return trim


class FreeMemory:
    """Returns free heap pages to the system, in a thread, one call at a time."""

    def __init__(self, trim: Callable[[int], int] | None = None) -> None:
        self._trim = trim if trim is not None else _malloc_trim()
        self._running = threading.Lock()
        #: How many times the heap was trimmed.
        self.trims = 0

    def __call__(self) -> None:
        """Trim now, in a thread (nothing if a trim is running or there is no glibc)."""
        if self._trim is None or not self._running.acquire(blocking=False):
            return
        threading.Thread(target=self._run, name="malloc_trim", daemon=True).start()

    def _run(self) -> None:
        try:
            assert self._trim is not None
            self._trim(0)
            self.trims += 1
        finally:
            self._running.release()
