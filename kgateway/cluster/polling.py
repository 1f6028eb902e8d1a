"""
A Twisted C{TimerService} for the node's pollers (the broker directory, the
cluster's topic readers), whose stop does not wait for a poll in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.internet import TimerService
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure


class PollService(TimerService):
    """
    Calls C{poll} every C{step} seconds, the first time when it starts.

    C{TimerService.stopService} waits for the call in flight; a poll waiting
    on a broker that does not answer would hold the node's shutdown for a
    whole timeout, so stopping cancels it instead (C{poll} must let the
    C{CancelledError} through).
    """

    def __init__(
        self, step: float, poll: Callable[[], Deferred[None]], clock: IReactorTime
    ) -> None:
        super().__init__(step, self._poll_once)
        self.clock = clock
        self._poll = poll
        self._current: Deferred[None] | None = None

    def _poll_once(self) -> Deferred[None]:
        self._current = current = self._poll()
        current.addErrback(_stopped)
        current.addBoth(self._done)
        return current

    def _done(self, result: object) -> object:
        self._current = None
        return result

    def stopService(self) -> Deferred[Any]:
        if not self.running:
            return succeed(None)
        stopped: Deferred[Any] = super().stopService()
        if self._current is not None:
            self._current.cancel()
        return stopped


def _stopped(failure: Failure) -> None:
    """A poll cancelled by stopping is no failure."""
    failure.trap(CancelledError)
