"""
Why a connection is not read from, kept per reason.

Several parts of the relay stop reading from one transport for reasons of
their own: the broker connection is not open yet, an interceptor holds a
request, the other side's send buffer is full (Twisted's push-producer
backpressure), the node's memory budget is spent, the connection is
closing.  Each lifts only its own reason, and the transport is read from
again only when none is left; pausing and resuming the transport directly
would let one part undo another's pause (a budget pause lifted by the
other side's buffer draining).
"""

from __future__ import annotations

from enum import IntFlag

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from kgateway.relay.transport import Transport


class Reason(IntFlag):
    """A reason not to read from a transport."""

    #: The client's route or broker connection is not there yet.
    ROUTING = 1
    #: A request waits for an interceptor; the ones behind it wait too.
    HELD = 2
    #: The other side's send buffer is full.
    BACKPRESSURE = 4
    #: The node holds more than its memory budget and this connection holds much of it.
    BUDGET = 8
    #: The connection takes no more requests (draining, or refused one).
    CLOSING = 16


# Plain ints: the hot path tests them.
_BACKPRESSURE = int(Reason.BACKPRESSURE)


@implementer(IPushProducer)
class ReadGate:
    """
    Reads from C{transport} only while no reason says not to.

    It is also the push producer registered with the other side's transport,
    whose pauses are the L{Reason.BACKPRESSURE} reason.
    """

    __slots__ = ("_transport", "_reasons")

    def __init__(self, transport: Transport, reasons: int = 0) -> None:
        self._transport = transport
        self._reasons = reasons
        if reasons:
            transport.pauseProducing()

    @property
    def reasons(self) -> Reason:
        """The reasons in force now."""
        return Reason(self._reasons)

    @property
    def paused(self) -> bool:
        """Whether the transport is not read from."""
        return bool(self._reasons)

    def pause(self, reason: int) -> None:
        """Stop reading for C{reason} (until L{resume} with it)."""
        if not self._reasons:
            self._transport.pauseProducing()
        self._reasons |= reason

    def resume(self, reason: int) -> None:
        """C{reason} no longer holds; read again if no other does."""
        reasons = self._reasons
        if reasons & reason:
            self._reasons = reasons = reasons & ~reason
            if not reasons:
                self._transport.resumeProducing()

    def pauseProducing(self) -> None:
        """The other side's send buffer is full."""
        self.pause(_BACKPRESSURE)

    def resumeProducing(self) -> None:
        """The other side's send buffer drained."""
        self.resume(_BACKPRESSURE)

    def stopProducing(self) -> None:
        """The other side is gone: so is this one (as Twisted's transports do)."""
        self._transport.stopProducing()
