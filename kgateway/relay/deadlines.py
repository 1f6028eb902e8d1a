"""
A client connection's time limits: how long it may sit idle, and how long
a request frame may take to arrive once it has started.

Kafka's brokers close a connection idle for C{connections.max.idle.ms}
(10 minutes); the gateway does the same for a connection with no request
and nothing in flight, and also ends a request frame that started to arrive
and did not finish within its deadline (a client that sends half a request
and goes silent would otherwise hold it, and its memory, until the idle
limit, or for ever while it trickles a byte at a time).

A node may have a million connections, so the cost per request must not be
a timer: each connection has at most one C{DelayedCall}, set for its next
possible deadline.  A read only records the time (L{ConnectionTimer.last_active});
the call, when it comes, looks at what happened since and either closes the
connection or sets itself for the next deadline.  It is moved sooner (a
cancel and a new call, which Twisted does in logarithmic time) only when a
frame starts and the call is set later than that frame's deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class TimedConnection(Protocol):
    """What the timer asks of its connection."""

    def busy(self) -> bool:
        """Whether requests are in flight or waiting (so the connection is not idle)."""

    def idle_expired(self, reason: str) -> None:
        """The idle limit was reached: close the connection, saying C{reason}."""

    def frame_expired(self, reason: str) -> None:
        """A request frame did not arrive in time: close the connection, saying C{reason}."""


class ConnectionTimer:
    """
    The one timer of a client connection.

    C{idle_seconds}: close when nothing was asked and nothing is in flight
    for this long (C{GATEWAY_CONNECTIONS_MAX_IDLE_MS}).  C{frame_seconds}:
    close when a request frame has been arriving for this long
    (C{GATEWAY_REQUEST_RECEIVE_TIMEOUT_MS}).
    """

    __slots__ = (
        "_clock",
        "_now",
        "idle_seconds",
        "frame_seconds",
        "_owner",
        "_call",
        "_due",
        "last_active",
        "frame_started",
    )

    def __init__(
        self,
        clock: IReactorTime,
        now: Callable[[], float],
        idle_seconds: float,
        frame_seconds: float,
        owner: TimedConnection,
    ) -> None:
        self._clock = clock
        self._now = now
        self.idle_seconds = idle_seconds
        self.frame_seconds = frame_seconds
        self._owner: TimedConnection | None = owner
        self._call: IDelayedCall | None = None
        self._due = 0.0
        started = now()
        #: When the connection last read a request or delivered an answer.
        self.last_active = started
        #: When the request frame still arriving began, or -1 when none is.
        self.frame_started = -1.0
        self._set(started, started + idle_seconds)

    def frame_began(self, now: float) -> None:
        """A request frame started to arrive at C{now} and is not whole yet."""
        self.frame_started = now
        due = now + self.frame_seconds
        if due < self._due:
            self._set(now, due)

    def stop(self) -> None:
        """The connection closed: no more calls, and no reference to it."""
        self._owner = None
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _set(self, now: float, due: float) -> None:
        call = self._call
        if call is not None and call.active():
            call.cancel()
        self._due = due
        self._call = self._clock.callLater(max(due - now, 0.0), self._check)

    def _check(self) -> None:
        self._call = None
        owner = self._owner
        if owner is None:
            return
        now = self._now()
        started = self.frame_started
        if started >= 0:
            waited = now - started
            if waited >= self.frame_seconds:
                owner.frame_expired(
                    f"a request frame started {waited:.1f} s ago and is still incomplete "
                    f"(the limit is {self.frame_seconds:g} s, "
                    "GATEWAY_REQUEST_RECEIVE_TIMEOUT_MS)"
                )
                return
        if owner.busy():
            # Not idle: the idle limit counts from now at the earliest.
            self.last_active = now
        elif started < 0:
            idle = now - self.last_active
            if idle >= self.idle_seconds:
                owner.idle_expired(
                    f"idle for {idle:.1f} s with nothing in flight (the limit is "
                    f"{self.idle_seconds:g} s, GATEWAY_CONNECTIONS_MAX_IDLE_MS)"
                )
                return
        due = self.last_active + self.idle_seconds
        if started >= 0:
            due = min(due, started + self.frame_seconds)
        self._set(now, max(due, now))
