"""
Requests waiting for their responses, in the order the client sent them.

Kafka answers the requests on one connection in order, and Produce with
C{acks=0} gets no answer at all.  The gateway answers some requests itself
(an unsupported version), and those answers must also leave in order, so
every request that expects a response takes a place in this queue.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from kgateway.protocol.framing import FrameError
from kgateway.protocol.headers import response_correlation_id
from kgateway.protocol.rewrite import Rewriter


@dataclass(slots=True)
class Pending:
    """One request that expects a response."""

    correlation_id: int
    api_key: int
    api_version: int
    sent_at: float
    #: Turns the broker's response into the one the client gets; None to forward it as is.
    rewriter: Rewriter | None = None
    # Set when the gateway answers the request itself.
    local_response: bytes | None = None
    #: The broker answered, but an interceptor has not finished with the answer.
    received: bool = False


@dataclass
class InFlight:
    """The queue of pending requests on one client connection."""

    queue: deque[Pending] = field(default_factory=deque)

    def __len__(self) -> int:
        return len(self.queue)

    def expect(self, pending: Pending) -> None:
        """Remember a request that was sent to the broker or answered locally."""
        self.queue.append(pending)

    def answered(self, frame: bytes) -> Pending:
        """Pair a broker response with the oldest request awaiting the broker."""
        correlation_id = response_correlation_id(frame)
        for pending in self.queue:
            if pending.local_response is None and not pending.received:
                if pending.correlation_id != correlation_id:
                    raise FrameError(
                        f"broker answered correlation id {correlation_id}, "
                        f"expected {pending.correlation_id}"
                    )
                return pending
        raise FrameError(
            f"broker sent a response (correlation id {correlation_id}) nobody asked for"
        )

    def ready(self) -> list[bytes]:
        """Take the responses at the head of the queue that can go to the client now."""
        return [pending.local_response for pending in self.take_ready()]  # type: ignore[misc]

    def take_ready(self) -> list[Pending]:
        """Take the requests at the head of the queue whose responses can go out now."""
        out = []
        while self.queue and self.queue[0].local_response is not None:
            out.append(self.queue.popleft())
        return out
