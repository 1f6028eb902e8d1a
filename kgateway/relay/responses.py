"""
The response path of one client connection: what happens to each broker
response between the broker and the client.

A response that needs no change goes on as the pieces it arrived in, and a
response still arriving goes on piece by piece once its correlation id is
in, when it is next in line for the client (so a slow client costs the
node a few reads, not a response).  Produce and Fetch responses with
leader hints are walked as they pass (L{kgateway.protocol.tail_rewrite}).
The others are kept whole: paired with their request, rewritten where they
carry broker addresses (L{REWRITERS}), read for a SASL login's outcome, and
handed to the interceptors that want them.  Every answer leaves in request
order, in one gathered write per read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.api_key import ApiKey
from twisted.internet.defer import Deferred

from kgateway.interceptors.api import ClientInfo, Close, Outcome, Respond, ResponseCall
from kgateway.interceptors.chain import run_response_chain
from kgateway.interceptors.identity import SaslObserver
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interfaces import IAddressMap, IAddressPlanner
from kgateway.log_limit import LogLimiter
from kgateway.metrics import ErrorReason, TrafficStats
from kgateway.protocol.codec import encode_response
from kgateway.protocol.framing import Cut, FrameError, FrameStream
from kgateway.protocol.headers import response_correlation_id
from kgateway.protocol.rewrite import Rewriter
from kgateway.protocol.tail_rewrite import HintsStream, passes_unchanged, rewrite_hinted
from kgateway.relay.deadlines import ConnectionTimer
from kgateway.relay.guard_stats import GuardStats
from kgateway.relay.inflight import InFlight, Pending
from kgateway.relay.pre_auth import PreAuthLimit
from kgateway.relay.requests import encoded
from kgateway.relay.transport import Piece, Transport, write_pieces

# A plain int, read once: compared on every response.
_SASL_AUTHENTICATE = int(ApiKey.SaslAuthenticate)


@dataclass(eq=False, slots=True)
class HeldResponse:
    """A broker's answer an interceptor is still deciding on; later answers wait behind it."""

    pending: Pending
    call: ResponseCall
    #: Taken by whoever waits for it (so the answer does not hold itself in a cycle).
    decision: Deferred[Outcome] | None


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
    pre_auth: PreAuthLimit
    guard: GuardStats
    logs: LogLimiter
    #: Told when an answer goes out (the idle limit counts from the last one).
    timer: ConnectionTimer | None = None
    bytes_to_client: int = 0
    #: The response being passed on as it arrives, and its leader hints' walk.
    passing: Pending | None = None
    hints: HintsStream | None = None
    #: The broker connection's frame reader, given by L{start} when it opens.
    reader: FrameStream = field(init=False, repr=False)

    def start(self, reader: FrameStream) -> None:
        """The broker connection is open: its responses are cut by C{reader}."""
        self.reader = reader

    def relay(self, cut: Cut) -> list[HeldResponse] | None:
        """
        What one read of the broker brought, each response as the pieces it
        arrived in: to the client, as those pieces when nothing in them
        changes, the others through L{pair_and_rewrite}.  The answers
        interceptors now hold, if any.

        A response goes on as it is when it is next in line for the client,
        no interceptor wants it, and it needs no rewriting.
        """
        inflight = self.inflight
        interceptors = self.interceptors if self.interceptors else None
        done: list[Pending] = []
        out: list[Piece] = []
        if cut.tail is not None:
            self._pass_piece(cut.tail, cut.tail_ends, out, done)
        whole: list[bytes] | None = None
        for pieces in cut.frames:
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
                    hints = head.hints
                    if (
                        # A frame too short or a stranger's correlation id: pair() reports it.
                        len(first) >= 8
                        and response_correlation_id(first) == head.correlation_id
                        and head.rewriter is None
                        and not (head.api_key == _SASL_AUTHENTICATE and self._sasl_watched())
                        and not (
                            interceptors is not None
                            and interceptors.for_response(head.api_key, self.client)
                        )
                        and (hints is None or passes_unchanged(hints, pieces, head.api_version))
                    ):
                        out.extend(pieces)
                        # Answers the gateway made itself may have waited behind it.
                        inflight.take_passed(done, out)
                        continue
                whole = []
            whole.append(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if out:
            # One write for the read's responses, as deliver_ready() does.
            self._deliver(done, out)
        held = self.pair_and_rewrite(whole) if whole else None
        if self.reader.undecided:
            self._offer()
        return held

    def _sasl_watched(self) -> bool:
        """Whether SaslAuthenticate answers are read: for a PLAIN username, or the login."""
        return self.sasl.offered is not None or self.pre_auth.watching

    def _offer(self) -> None:
        """
        The response still arriving: passed on as it arrives when it is next
        in line and nothing needs it whole, kept whole when something does;
        asked again on the next read while an earlier answer still waits.
        """
        head = self.inflight.awaiting_head()
        if head is None:
            return
        reader = self.reader
        first = reader.head(8)
        if len(first) < 8:
            return
        interceptors = self.interceptors
        if (
            response_correlation_id(first) != head.correlation_id  # pair() reports it
            or head.rewriter is not None
            or (head.api_key == _SASL_AUTHENTICATE and self._sasl_watched())
            or (interceptors and interceptors.for_response(head.api_key, self.client))
        ):
            reader.keep_whole()
            return
        if head.hints is not None:
            self.hints = HintsStream(head.hints, head.api_version, reader.frame_size, self._mapping)
        self.passing = head
        out: list[Piece] = []
        for piece in reader.pass_on(self._tail):
            self._pass_piece(piece, False, out, [])
        self._deliver([], out)

    def _tail(self, piece: bytes, last: bool) -> None:
        """The next piece of the response being passed on, straight from the broker's reader."""
        if not last and self.hints is None:
            # The usual read of a large response: it goes on as it is.
            size = len(piece)
            self.bytes_to_client += size
            self.stats.bytes_to_client += size
            write_pieces(self.transport, (piece,))
            return
        out: list[Piece] = []
        done: list[Pending] = []
        try:
            self._pass_piece(piece, last, out, done)
        except FrameError as e:
            # Part of the response is already with the client: nothing to do but close.
            self.logs.warn("{conn}: closing: {reason}", conn=self.conn, reason=str(e))
            self.transport.abortConnection()
            return
        self._deliver(done, out)

    def _pass_piece(self, piece: bytes, last: bool, out: list[Piece], done: list[Pending]) -> None:
        hints = self.hints
        if hints is None:
            out.append(piece)
        else:
            out.extend(hints.feed(piece, last))
        if last:
            pending = self.passing
            self.passing = self.hints = None
            if hints is not None and hints.outcome is not None and pending is not None:
                self._count_fitted(hints, pending)
            # Answers the gateway made itself may have waited behind it.
            self.inflight.take_passed(done, out)

    def _count_fitted(self, hints: HintsStream, pending: Pending) -> None:
        fitted = hints.outcome
        assert fitted is not None
        self.stats.api(pending.api_key).rewritten += 1
        self.guard.leader_hints_streamed += 1
        left_out = fitted.mapped - fitted.kept
        if left_out:
            self.guard.leader_hints_left_out += left_out
            self.logs.debug(
                "{conn}: {count} of {total} leader hints left out of a streamed api key "
                "{key} v{version} response (gateway addresses longer than the broker's); "
                "the client refreshes its metadata",
                conn=self.conn,
                count=left_out,
                total=fitted.mapped,
                key=pending.api_key,
                version=pending.api_version,
            )

    def pair_and_rewrite(self, frames: list[bytes]) -> list[HeldResponse] | None:
        """
        Pair whole broker responses with their requests, rewrite the ones that
        carry broker addresses, run the response interceptors, and deliver
        what is ready, in order.  The answers interceptors now hold, if any.
        """
        held: list[HeldResponse] | None = None
        inflight = self.inflight
        interceptors = self.interceptors if self.interceptors else None
        for frame in frames:
            pending = inflight.pair(frame)
            rewriter = pending.rewriter
            answer = frame
            if rewriter is not None:
                answer = self._rewritten(rewriter, pending, frame)
            elif pending.hints is not None:
                answer = self._rewritten(_hints_rewriter(pending), pending, frame)
            if pending.api_key == _SASL_AUTHENTICATE:
                self._sasl_answered(pending, frame)
            if interceptors is not None:
                chain = interceptors.for_response(pending.api_key, self.client)
                if chain:
                    waiting = self._intercept(chain, pending, answer)
                    if waiting is not None:
                        if held is None:
                            held = []
                        held.append(waiting)
                    continue
            inflight.ready(pending, answer)
        self.deliver_ready()
        return held

    def decided(self, held: HeldResponse, outcome: Outcome) -> None:
        """An interceptor decided on a held answer: it can go, in its turn."""
        self.inflight.ready(held.pending, self._after(held.call, outcome))
        self.deliver_ready()

    def deliver_ready(self) -> None:
        """Write the answers at the head of the order that are ready (one write)."""
        done = self.inflight.take_ready()
        if done:
            # Every answer taken is set (take_ready takes only those); the test is for the type.
            self._deliver(done, [answer for p in done if (answer := p.answer) is not None])

    def _deliver(self, done: list[Pending], pieces: list[Piece]) -> None:
        sent = sum(map(len, pieces))
        self.bytes_to_client += sent
        self.stats.bytes_to_client += sent
        if done:
            now = self.now()
            self.stats.delivered(done, now)
            timer = self.timer
            if timer is not None:
                timer.last_active = now
        write_pieces(self.transport, pieces)

    def _mapping(self) -> IAddressMap:
        return self.planner.mapping(self._client_key())

    def _rewritten(self, rewriter: Rewriter, pending: Pending, frame: bytes) -> bytes:
        try:
            rewritten = rewriter(frame, pending.api_version, self._mapping())
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

    def _sasl_answered(self, pending: Pending, frame: bytes) -> None:
        if self.pre_auth.answered(pending.api_version, frame, self.sasl.mechanism):
            self.logs.info("{conn}: logged in; frames up to the frame limit now", conn=self.conn)
        if self.sasl.offered is None:
            return
        try:
            username = self.sasl.response(pending.api_key, pending.api_version, frame)
        except Exception as e:
            self.logs.info("{conn}: cannot read the SASL answer: {e}", conn=self.conn, e=e)
            return
        if username is not None:
            self.client.username = username
            self.logs.info("{conn}: authenticated as {user}", conn=self.conn, user=username)

    def _intercept(
        self, chain: tuple[Any, ...], pending: Pending, answer: bytes
    ) -> HeldResponse | None:
        call = ResponseCall(
            self.client, pending.api_key, pending.api_version, pending.correlation_id, answer
        )
        self.inflight.intercepted(pending, answer)
        outcome = run_response_chain(chain, call)
        if isinstance(outcome, Deferred):
            return HeldResponse(pending, call, outcome)
        self.inflight.ready(pending, self._after(call, outcome))
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


def _hints_rewriter(pending: Pending) -> Rewriter:
    kind = pending.hints
    assert kind is not None

    def rewrite(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
        return rewrite_hinted(kind, frame, version, mapping)

    return rewrite
