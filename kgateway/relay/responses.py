"""
The response path of one client connection: what happens to each broker
response between the broker and the client.

A response that needs no change goes on as the pieces it arrived in (a
large Fetch response is never joined).  The others are paired with their
request, rewritten where they carry broker addresses (L{REWRITERS}), read
for a SASL/PLAIN login's outcome, and handed to the interceptors that want
them.  Every answer leaves in request order, in one gathered write per read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka.protocol.api_key import ApiKey
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from kgateway.interceptors.api import ClientInfo, Close, Outcome, Respond, ResponseCall
from kgateway.interceptors.chain import run_response_chain
from kgateway.interceptors.identity import SaslObserver
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interfaces import IAddressPlanner
from kgateway.metrics import ErrorReason, TrafficStats
from kgateway.protocol.codec import encode_response
from kgateway.protocol.framing import FrameError
from kgateway.protocol.headers import response_correlation_id
from kgateway.protocol.rewrite import Rewriter, passes_unchanged
from kgateway.relay.inflight import InFlight, Pending
from kgateway.relay.requests import encoded
from kgateway.relay.transport import Transport, write_pieces

log = Logger()

# A plain int, read once: compared on every response.
_SASL_AUTHENTICATE = int(ApiKey.SaslAuthenticate)


@dataclass(frozen=True, slots=True)
class HeldResponse:
    """A broker's answer an interceptor is still deciding on; later answers wait behind it."""

    pending: Pending
    call: ResponseCall
    decision: Deferred[Outcome]


@dataclass(eq=False, slots=True)
class ResponsePath:
    """Hands one connection's broker responses to its client, in request order."""

    client: ClientInfo
    #: Names the connection in log lines.
    conn: str
    inflight: InFlight
    #: The client's transport.
    transport: Transport
    planner: IAddressPlanner
    stats: TrafficStats
    now: Callable[[], float]
    interceptors: InterceptorSet | None
    sasl: SaslObserver
    bytes_to_client: int = 0

    def relay(self, frames: list[list[bytes]]) -> list[HeldResponse] | None:
        """
        Broker responses, each as the pieces it arrived in: to the client, as
        those pieces when nothing in them changes, the others through
        L{pair_and_rewrite}.  The answers interceptors now hold, if any.

        A response goes on as it is when it is next in line for the client,
        no interceptor wants it, and it needs no rewriting.
        """
        inflight = self.inflight
        interceptors = self.interceptors if self.interceptors else None
        done: list[Pending] = []
        out: list[bytes] = []
        whole: list[bytes] | None = None
        for pieces in frames:
            # After one response takes the whole path, the rest of this read
            # follows it there, so the client gets them in order.  The test
            # for passing through is written out here: it runs per response.
            if whole is None:
                head = inflight.awaiting_head()
                if head is not None:
                    first = pieces[0]
                    if len(first) < 8:
                        # The read ended inside the header; pieces are never empty.
                        first = b"".join(pieces[:8])
                    rewriter = head.rewriter
                    if (
                        # A frame too short or a stranger's correlation id: pair() reports it.
                        len(first) >= 8
                        and response_correlation_id(first) == head.correlation_id
                        # A SASL login's answer says whether its username counts.
                        and not (
                            head.api_key == _SASL_AUTHENTICATE and self.sasl.offered is not None
                        )
                        and not (
                            interceptors is not None
                            and interceptors.for_response(head.api_key, self.client)
                        )
                        and (
                            rewriter is None or passes_unchanged(rewriter, pieces, head.api_version)
                        )
                    ):
                        out.extend(pieces)
                        # Answers the gateway made itself may have waited behind it.
                        inflight.take_passed(done, out)
                        continue
                whole = []
            whole.append(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if done:
            # One write for the read's responses, as deliver_ready() does.
            self._deliver(done, out)
        if whole:
            return self.pair_and_rewrite(whole)
        return None

    def pair_and_rewrite(self, frames: list[bytes]) -> list[HeldResponse] | None:
        """
        Pair whole broker responses with their requests, rewrite the ones that
        carry broker addresses, run the response interceptors, and deliver
        what is ready, in order.  The answers interceptors now hold, if any.
        """
        held: list[HeldResponse] | None = None
        interceptors = self.interceptors if self.interceptors else None
        for frame in frames:
            pending = self.inflight.pair(frame)
            rewriter = pending.rewriter
            answer = frame if rewriter is None else self._rewritten(rewriter, pending, frame)
            if pending.api_key == _SASL_AUTHENTICATE and self.sasl.offered is not None:
                self._learn_username(pending, frame)
            if interceptors is not None:
                chain = interceptors.for_response(pending.api_key, self.client)
                if chain:
                    waiting = self._intercept(chain, pending, answer)
                    if waiting is not None:
                        if held is None:
                            held = []
                        held.append(waiting)
                    continue
            pending.ready(answer)
        self.deliver_ready()
        return held

    def decided(self, held: HeldResponse, outcome: Outcome) -> None:
        """An interceptor decided on a held answer: it can go, in its turn."""
        held.pending.ready(self._after(held.call, outcome))
        self.deliver_ready()

    def deliver_ready(self) -> None:
        """Write the answers at the head of the order that are ready (one write)."""
        done = self.inflight.take_ready()
        if done:
            # Every answer taken is set (take_ready takes only those); the test is for the type.
            self._deliver(done, [answer for p in done if (answer := p.answer) is not None])

    def _deliver(self, done: list[Pending], pieces: list[bytes]) -> None:
        sent = sum(map(len, pieces))
        self.bytes_to_client += sent
        self.stats.bytes_to_client += sent
        self.stats.delivered(done, self.now())
        write_pieces(self.transport, pieces)

    def _rewritten(self, rewriter: Rewriter, pending: Pending, frame: bytes) -> bytes:
        try:
            rewritten = rewriter(
                frame, pending.api_version, self.planner.mapping(self._client_key())
            )
        except Exception as e:
            self.stats.api(pending.api_key).error(ErrorReason.REWRITE_FAILED)
            raise FrameError(
                f"cannot rewrite the broker's api key {pending.api_key} "
                f"v{pending.api_version} response: {e}"
            ) from e
        # Produce and Fetch come back as they were unless they carry leader hints.
        if rewritten is not frame:
            self.stats.api(pending.api_key).rewritten += 1
        return rewritten

    def _client_key(self) -> str:
        """Who the client is for the mapping: its host and client id (not its port)."""
        return f"{self.client.host}|{self.client.client_id or ''}"

    def _learn_username(self, pending: Pending, frame: bytes) -> None:
        try:
            username = self.sasl.response(pending.api_key, pending.api_version, frame)
        except Exception as e:
            log.info("{conn}: cannot read the SASL answer: {e}", conn=self.conn, e=e)
            return
        if username is not None:
            self.client.username = username
            log.info("{conn}: authenticated as {user}", conn=self.conn, user=username)

    def _intercept(
        self, chain: tuple[Any, ...], pending: Pending, answer: bytes
    ) -> HeldResponse | None:
        call = ResponseCall(
            self.client, pending.api_key, pending.api_version, pending.correlation_id, answer
        )
        pending.intercepted()
        outcome = run_response_chain(chain, call)
        if isinstance(outcome, Deferred):
            return HeldResponse(pending, call, outcome)
        pending.ready(self._after(call, outcome))
        return None

    def _after(self, call: ResponseCall, outcome: Outcome) -> bytes:
        """The client's answer once the interceptors decided."""
        if isinstance(outcome, Close):
            raise FrameError(f"closed by an interceptor: {outcome.reason}")
        if isinstance(outcome, Respond):
            return encoded(encode_response, outcome.message, call.correlation_id, call.api_version)
        if call.changed:
            return encoded(encode_response, call.message, call.correlation_id, call.api_version)
        return call.frame
