"""
The request path of one client connection: what happens to each request
frame between the client and the broker.

Only the header is read.  A version the gateway does not offer is answered
here (UNSUPPORTED_VERSION, in its place in the response order); Produce with
C{acks=0} is sent without a place in that order (no answer comes); SASL
requests are watched for the PLAIN username; interceptors that want the
request run on it.  An interceptor that decides later holds the request, and
every frame behind it waits (Kafka answers a connection's requests in order,
and producers rely on the broker seeing them in order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.api_key import ApiKey
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from kgateway.interceptors.api import ClientInfo, Close, Outcome, RequestCall, Respond
from kgateway.interceptors.chain import run_request_chain
from kgateway.interceptors.identity import SaslObserver
from kgateway.interceptors.registry import InterceptorSet
from kgateway.metrics import ApiTraffic, ErrorReason, TrafficStats
from kgateway.protocol.codec import encode_request, encode_response
from kgateway.protocol.errors import CannotAnswer, unsupported_version
from kgateway.protocol.framing import FrameError
from kgateway.protocol.headers import (
    RequestInfo,
    produce_acks,
    request_client_id,
    request_info,
)
from kgateway.protocol.rewrite import REWRITERS
from kgateway.protocol.versions import is_offered
from kgateway.relay.inflight import InFlight
from kgateway.relay.transport import Transport, write_pieces

log = Logger()

# Plain ints, read once: compared on every request.
_PRODUCE = int(ApiKey.Produce)
_SASL = (int(ApiKey.SaslHandshake), int(ApiKey.SaslAuthenticate))


class WaitingFrames:
    """
    Request frames that cannot go on yet, in the order they arrived: before
    the connection's route is known, before its broker leg is open, or behind
    a request an interceptor holds.  The client's transport is paused while
    frames wait, so at most one read's worth arrives after the pause.
    """

    __slots__ = ("_frames",)

    def __init__(self) -> None:
        self._frames: list[bytes] = []

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, frames: list[bytes]) -> None:
        """Frames that arrived now wait behind the ones already waiting."""
        self._frames.extend(frames)

    def push_front(self, frames: list[bytes]) -> None:
        """Frames that arrived before the ones waiting (the rest of a read cut by a hold)."""
        self._frames[:0] = frames

    def take(self) -> list[bytes]:
        """Every waiting frame, oldest first; none wait afterwards."""
        frames, self._frames = self._frames, []
        return frames

    def clear(self) -> None:
        """The connection is over: drop them (the client sends them again elsewhere)."""
        self._frames.clear()


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """A request an interceptor is still deciding on; later frames wait behind it."""

    info: RequestInfo
    call: RequestCall
    arrived_at: float
    decision: Deferred[Outcome]


@dataclass(eq=False, slots=True)
class RequestPath:
    """Admits one connection's requests, in order, to its broker or to a local answer."""

    client: ClientInfo
    #: Names the connection in log lines.
    conn: str
    inflight: InFlight
    waiting: WaitingFrames
    #: The client's transport: not read from while a request is held.
    transport: Transport
    stats: TrafficStats
    now: Callable[[], float]
    interceptors: InterceptorSet | None
    sasl: SaslObserver
    bytes_from_client: int = 0
    client_id_read: bool = False
    held: HeldRequest | None = None
    #: The broker connection's transport, given by L{start} when it opens;
    #: nothing is admitted before (the frames wait).
    broker: Transport = field(init=False, repr=False)

    def start(self, broker: Transport) -> None:
        """The broker connection is open on C{broker}: requests may be admitted."""
        self.broker = broker

    def admit(self, frames: list[bytes]) -> HeldRequest | None:
        """
        Request frames from the client: send them on, or answer them, in
        order.  The request an interceptor now holds, if one does (its
        decision is for the caller to wait for); the frames behind it wait.
        """
        received = sum(map(len, frames))
        self.bytes_from_client += received
        self.stats.bytes_from_client += received
        if not self.client_id_read:
            self.client_id_read = True
            self.client.client_id = request_client_id(frames[0])
        if self.held is not None:
            self.waiting.add(frames)
            self.transport.pauseProducing()
            return None
        return self._process(frames, self.now())

    def settle(self, held: HeldRequest, outcome: Outcome) -> None:
        """An interceptor decided on the held request: act on it."""
        self.held = None
        info = held.info
        frame = self._after(info, held.call, outcome, held.arrived_at)
        if frame:
            outgoing: list[bytes] = []
            self._expect(info, frame, held.arrived_at, outgoing)
            write_pieces(self.broker, outgoing)

    def release(self) -> HeldRequest | None:
        """After L{settle}: the frames that waited go on (until another request is held)."""
        frames = self.waiting.take()
        held = self._process(frames, self.now()) if frames else None
        if held is None:
            self.transport.resumeProducing()
        return held

    def _process(self, frames: list[bytes], now: float) -> HeldRequest | None:
        # The hot path: a frame that needs nothing but its header costs one
        # header read, one counter and (if it expects an answer) one Pending.
        stats = self.stats
        apis = stats.apis
        inflight = self.inflight
        interceptors = self.interceptors if self.interceptors else None
        outgoing: list[bytes] = []
        for index, frame in enumerate(frames):
            info = request_info(frame)
            api_key = info.api_key
            traffic = apis.get(api_key) or stats.api(api_key)
            traffic.requests += 1
            if not is_offered(api_key, info.api_version):
                self._answer_unsupported(info, frame, traffic, now)
                continue
            if api_key in _SASL:
                self._observe_sasl(info, frame)
            if interceptors is not None:
                chain = interceptors.for_request(api_key, self.client)
                if chain:
                    call = RequestCall(
                        self.client, api_key, info.api_version, info.correlation_id, frame
                    )
                    outcome = run_request_chain(chain, call)
                    if isinstance(outcome, Deferred):
                        return self._hold(outcome, info, call, now, frames[index + 1 :], outgoing)
                    frame = self._after(info, call, outcome, now)
                    if not frame:
                        continue
            if api_key == _PRODUCE and produce_acks(frame, info.api_version) == 0:
                outgoing.append(frame)  # acks=0: no answer comes, so no place in the order
                continue
            inflight.expect_broker(
                info.correlation_id, api_key, info.api_version, now, REWRITERS.get(api_key)
            )
            outgoing.append(frame)
        if outgoing:
            write_pieces(self.broker, outgoing)
        return None

    def _expect(self, info: RequestInfo, frame: bytes, now: float, outgoing: list[bytes]) -> None:
        """C{frame} goes to the broker; it takes a place in the order unless it is acks=0."""
        if not (info.api_key == _PRODUCE and produce_acks(frame, info.api_version) == 0):
            self.inflight.expect_broker(
                info.correlation_id,
                info.api_key,
                info.api_version,
                now,
                REWRITERS.get(info.api_key),
            )
        outgoing.append(frame)

    def _answer_unsupported(
        self, info: RequestInfo, frame: bytes, traffic: ApiTraffic, now: float
    ) -> None:
        try:
            answer = unsupported_version(info.api_key, info.api_version, info.correlation_id)
        except CannotAnswer as e:
            raise FrameError(
                f"request api key {info.api_key} v{info.api_version} is above what "
                f"the gateway offers, and {e}"
            ) from e
        log.info(
            "{conn}: api key {key} v{version} is not offered; answered UNSUPPORTED_VERSION",
            conn=self.conn,
            key=info.api_key,
            version=info.api_version,
        )
        traffic.error(ErrorReason.UNSUPPORTED_VERSION)
        self.stats.bytes_answered_locally += len(frame)
        self.inflight.answer_locally(
            info.correlation_id, info.api_key, info.api_version, now, answer
        )

    def _observe_sasl(self, info: RequestInfo, frame: bytes) -> None:
        try:
            self.sasl.request(info.api_key, info.api_version, frame)
        except Exception as e:  # the broker judges the request; we only lose the username
            log.info("{conn}: cannot read the SASL request: {e}", conn=self.conn, e=e)

    def _after(self, info: RequestInfo, call: RequestCall, outcome: Outcome, now: float) -> bytes:
        """Act on the interceptors' outcome; the frame to send on, or b"" if none."""
        if isinstance(outcome, Close):
            raise FrameError(f"closed by an interceptor: {outcome.reason}")
        if isinstance(outcome, Respond):
            answer = encoded(
                encode_response, outcome.message, info.correlation_id, info.api_version
            )
            self.stats.bytes_answered_locally += len(call.frame)
            if info.api_key == _PRODUCE and produce_acks(call.frame, info.api_version) == 0:
                return b""  # acks=0: the client expects no answer, even a refusal
            self.inflight.answer_locally(
                info.correlation_id, info.api_key, info.api_version, now, answer
            )
            return b""
        if call.changed:
            return encoded(encode_request, call.message)
        return call.frame

    def _hold(
        self,
        decision: Deferred[Outcome],
        info: RequestInfo,
        call: RequestCall,
        now: float,
        rest: list[bytes],
        outgoing: list[bytes],
    ) -> HeldRequest:
        """An interceptor answers later: send what came before, keep the rest until it does."""
        if outgoing:
            write_pieces(self.broker, outgoing)
        if rest:
            self.waiting.push_front(rest)
        self.transport.pauseProducing()
        self.held = HeldRequest(info, call, now, decision)
        return self.held


def encoded(encode: Callable[..., bytes], *args: Any) -> bytes:
    """Encode what an interceptor built; a message the codec cannot encode closes the connection."""
    try:
        return encode(*args)
    except Exception as e:
        raise FrameError(f"cannot encode what an interceptor returned: {e!r}") from e
