"""
Requests waiting for their responses, in the order the client sent them.

Kafka answers the requests on one connection in order, and Produce with
C{acks=0} gets no answer at all.  The gateway answers some requests itself
(an unsupported version, an interceptor's answer), and interceptors may hold
a broker's answer for a while; every answer must still leave in request
order, so every request that expects a response takes a place in this queue,
and each place says which L{Stage} it is in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from kgateway.protocol.framing import FrameError
from kgateway.protocol.headers import response_correlation_id
from kgateway.protocol.rewrite import Rewriter
from kgateway.protocol.tail_rewrite import HintedResponse


class Stage(Enum):
    """Where a request's answer is."""

    #: Sent to the broker; its response has not arrived.
    AWAITING_BROKER = "awaiting the broker"
    #: The broker answered; an interceptor has not finished with the answer.
    INTERCEPTED = "held by an interceptor"
    #: The answer (the broker's, rewritten or changed where needed) can go to the client.
    READY = "ready"
    #: The gateway answered the request itself; the broker never saw it.
    ANSWERED_LOCALLY = "answered locally"


# Module names for the members: the hot path compares them by identity.
AWAITING_BROKER = Stage.AWAITING_BROKER
INTERCEPTED = Stage.INTERCEPTED
READY = Stage.READY
ANSWERED_LOCALLY = Stage.ANSWERED_LOCALLY


@dataclass(slots=True)
class Pending:
    """One request that expects a response, and its answer once there is one."""

    correlation_id: int
    api_key: int
    api_version: int
    sent_at: float
    #: Turns the broker's whole response into the one the client gets; None to forward it.
    rewriter: Rewriter | None = None
    #: The response's leader hints, when it may carry them (Produce v10+, Fetch v16+).
    hints: HintedResponse | None = None
    stage: Stage = AWAITING_BROKER
    #: What the client gets: set exactly when the stage is READY or ANSWERED_LOCALLY.
    answer: bytes | None = None
    #: Bytes this request's answer holds while it waits (counted by L{InFlight.held_bytes}).
    held: int = 0


class InFlight:
    """The requests of one client connection that await their answer, oldest first."""

    __slots__ = ("_queue", "held_bytes")

    def __init__(self) -> None:
        self._queue: deque[Pending] = deque()
        #: Bytes of answers that wait: for their turn, or for an interceptor.
        self.held_bytes = 0

    def __len__(self) -> int:
        return len(self._queue)

    def expect_broker(
        self,
        correlation_id: int,
        api_key: int,
        api_version: int,
        sent_at: float,
        rewriter: Rewriter | None,
        hints: HintedResponse | None = None,
    ) -> None:
        """A request went to the broker and expects its response."""
        self._queue.append(Pending(correlation_id, api_key, api_version, sent_at, rewriter, hints))

    def answer_locally(
        self, correlation_id: int, api_key: int, api_version: int, sent_at: float, answer: bytes
    ) -> None:
        """The gateway answers a request itself; the answer waits for its turn."""
        size = len(answer)
        self.held_bytes += size
        self._queue.append(
            Pending(
                correlation_id,
                api_key,
                api_version,
                sent_at,
                None,
                None,
                ANSWERED_LOCALLY,
                answer,
                size,
            )
        )

    def intercepted(self, pending: Pending, frame: bytes) -> None:
        """The broker's answer C{frame} arrived and an interceptor is deciding on it."""
        pending.stage = INTERCEPTED
        size = len(frame)
        self.held_bytes += size - pending.held
        pending.held = size

    def ready(self, pending: Pending, answer: bytes) -> None:
        """The client's answer to C{pending} is known; it waits for its turn."""
        pending.stage = READY
        pending.answer = answer
        size = len(answer)
        self.held_bytes += size - pending.held
        pending.held = size

    def pair(self, frame: bytes) -> Pending:
        """The oldest request awaiting the broker, which the broker's response C{frame} answers."""
        correlation_id = response_correlation_id(frame)
        for pending in self._queue:
            if pending.stage is AWAITING_BROKER:
                if pending.correlation_id != correlation_id:
                    raise FrameError(
                        f"broker answered correlation id {correlation_id}, "
                        f"expected {pending.correlation_id}"
                    )
                return pending
        raise FrameError(
            f"broker sent a response (correlation id {correlation_id}) nobody asked for"
        )

    def awaiting_head(self) -> Pending | None:
        """
        The oldest request if it awaits the broker: the next broker response
        may then pass through to the client as it is.  None when the queue is
        empty or an earlier answer still waits (for an interceptor, or for its turn).
        """
        queue = self._queue
        if queue:
            head = queue[0]
            if head.stage is AWAITING_BROKER:
                return head
        return None

    def take_passed(self, done: list[Pending], answers: list[bytes | memoryview]) -> None:
        """
        The head's response went on as it arrived: take the head into C{done},
        and the answers ready behind it into C{done} and C{answers}.
        """
        queue = self._queue
        done.append(queue.popleft())
        while queue:
            answer = queue[0].answer
            if answer is None:
                return
            taken = queue.popleft()
            self.held_bytes -= taken.held
            done.append(taken)
            answers.append(answer)

    def take_ready(self) -> list[Pending]:
        """Take the requests at the head of the queue whose answers can go out now."""
        queue = self._queue
        out = []
        while queue and queue[0].answer is not None:
            taken = queue.popleft()
            self.held_bytes -= taken.held
            out.append(taken)
        return out

    def abandon(self) -> list[Pending]:
        """The connection is over: take every request still waiting (never answered)."""
        out = list(self._queue)
        self._queue.clear()
        self.held_bytes = 0
        return out
