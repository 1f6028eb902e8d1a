"""
The request path of one client connection: what happens to each request
frame between the client and the broker.

Only the header is read.  Produce with C{acks=0} is sent without a place in
the response order (no answer comes); SASL requests are watched; interceptors
that want the request run on it.  An interceptor that decides later holds
the request, and every frame behind it waits (Kafka answers a connection's
requests in order, and producers rely on the broker seeing them in order).

A frame still arriving goes to the broker as its pieces arrive once its
header is in, when nothing needs it whole: an offered version, not SASL, no
interceptor for it, nothing held before it (L{RequestPath.offer}).  The
others are kept whole by the frame reader, within the frame limit and the
node's memory budget.

A version the gateway does not offer is refused as a broker refuses it:
ApiVersions gets UNSUPPORTED_VERSION (a v0 answer, in its place in the
order); anything else, and a frame that cannot be read, ends the
connection, once every request before it has been answered (L{Refused}).
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
from kgateway.log_limit import LogLimiter
from kgateway.metrics import ApiTraffic, ErrorReason, TrafficStats
from kgateway.protocol.codec import encode_request, encode_response
from kgateway.protocol.errors import unsupported_version
from kgateway.protocol.framing import HEAD_BYTES, Cut, FrameError, FrameStream, joined
from kgateway.protocol.headers import (
    RequestInfo,
    produce_acks,
    request_client_id,
    request_info,
)
from kgateway.protocol.rewrite import REWRITERS
from kgateway.protocol.tail_rewrite import hinted
from kgateway.protocol.versions import is_offered
from kgateway.relay.inflight import InFlight
from kgateway.relay.read_gate import ReadGate, Reason
from kgateway.relay.transport import Transport, write_pieces

log = Logger()

# Plain ints, read once: compared on every request.
_PRODUCE = int(ApiKey.Produce)
_API_VERSIONS = int(ApiKey.ApiVersions)
_SASL = (int(ApiKey.SaslHandshake), int(ApiKey.SaslAuthenticate))
_HELD = int(Reason.HELD)


class Refused(Exception):
    """
    A request the gateway refuses: the connection takes nothing after it and
    closes once the answers to every request before it are delivered.
    """


class WaitingFrames:
    """
    Request frames that cannot go on yet, in the order they arrived: before
    the connection's route is known, before its broker leg is open, or behind
    a request an interceptor holds.  The client's transport is paused while
    frames wait, so at most one read's worth arrives after the pause.
    """

    __slots__ = ("_frames", "bytes", "refusal")

    def __init__(self) -> None:
        self._frames: list[bytes] = []
        #: The bytes of the frames waiting.
        self.bytes = 0
        #: Why the connection refuses what comes after the frames waiting (or None).
        self.refusal: str | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, frames: list[bytes]) -> None:
        """Frames that arrived now wait behind the ones already waiting."""
        self._frames.extend(frames)
        self.bytes += sum(map(len, frames))

    def push_front(self, frames: list[bytes]) -> None:
        """Frames that arrived before the ones waiting (the rest of a read cut by a hold)."""
        self._frames[:0] = frames
        self.bytes += sum(map(len, frames))

    def take(self) -> list[bytes]:
        """Every waiting frame, oldest first; none wait afterwards."""
        frames, self._frames = self._frames, []
        self.bytes = 0
        return frames

    def clear(self) -> None:
        """The connection is over: drop them (the client sends them again elsewhere)."""
        self._frames.clear()
        self.bytes = 0


@dataclass(eq=False, slots=True)
class HeldRequest:
    """A request an interceptor is still deciding on; later frames wait behind it."""

    info: RequestInfo
    call: RequestCall
    arrived_at: float
    #: Taken by whoever waits for it (so the answer does not hold itself in a cycle).
    decision: Deferred[Outcome] | None


@dataclass(eq=False, slots=True)
class RequestPath:
    """Admits one connection's requests, in order, to its broker or to a local answer."""

    client: ClientInfo
    #: Names the connection in log lines.
    conn: str
    inflight: InFlight
    waiting: WaitingFrames
    #: Whether the client's transport is read from.
    gate: ReadGate
    #: The client's frame reader: its frame still arriving is offered here.
    reader: FrameStream
    stats: TrafficStats
    now: Callable[[], float]
    interceptors: InterceptorSet | None
    sasl: SaslObserver
    logs: LogLimiter
    bytes_from_client: int = 0
    client_id_read: bool = False
    held: HeldRequest | None = None
    #: The broker connection's transport, given by L{start} when it opens;
    #: nothing is admitted before (the frames wait).
    broker: Transport = field(init=False, repr=False)

    def start(self, broker: Transport) -> None:
        """The broker connection is open on C{broker}: requests may be admitted."""
        self.broker = broker

    @property
    def held_bytes(self) -> int:
        """The bytes of the request an interceptor holds."""
        held = self.held
        return len(held.call.frame) if held is not None else 0

    def admit(self, cut: Cut) -> HeldRequest | None:
        """
        What one read of the client brought: the next piece of a frame being
        passed on, then whole frames, sent on or answered in order.  The
        request an interceptor now holds, if one does (its decision is for
        the caller to wait for); the frames behind it wait.
        """
        if cut.tail is not None:
            self.pass_tail(cut.tail)
        if cut.frames:
            frames = joined(cut.frames)
            received = sum(map(len, frames))
            self.bytes_from_client += received
            self.stats.bytes_from_client += received
            if not self.client_id_read:
                self.client_id_read = True
                self.client.client_id = request_client_id(frames[0])
            if self.held is not None:
                self.waiting.add(frames)
                self.gate.pause(_HELD)
                return None
            held = self._process(frames, self.now())
            if held is not None:
                return held
        if self.held is None and self.reader.undecided:
            self.offer(self.now())
        return None

    def pass_tail(self, piece: bytes, last: bool = False) -> None:
        """The next piece of the frame being passed on."""
        size = len(piece)
        self.bytes_from_client += size
        self.stats.bytes_from_client += size
        write_pieces(self.broker, (piece,))

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
        now = self.now()
        held = self._process(frames, now) if frames else None
        if held is None:
            self.gate.resume(_HELD)
            refusal = self.waiting.refusal
            if refusal is not None:
                raise Refused(refusal)
            if self.reader.undecided:
                self.offer(now)
        return held

    def _process(self, frames: list[bytes], now: float) -> HeldRequest | None:
        # The hot path: a frame that needs nothing but its header costs one
        # header read, one counter and (if it expects an answer) one Pending.
        outgoing: list[bytes] = []
        try:
            return self._each(frames, now, outgoing)
        finally:
            # Refused or not, everything before the refused frame goes, and is answered.
            if outgoing:
                write_pieces(self.broker, outgoing)

    def _each(self, frames: list[bytes], now: float, outgoing: list[bytes]) -> HeldRequest | None:
        stats = self.stats
        apis = stats.apis
        inflight = self.inflight
        interceptors = self.interceptors if self.interceptors else None
        for index, frame in enumerate(frames):
            try:
                info = request_info(frame)
            except FrameError as e:
                raise Refused(f"bad request from client: {e}") from e
            api_key = info.api_key
            traffic = apis.get(api_key) or stats.api(api_key)
            traffic.requests += 1
            if not is_offered(api_key, info.api_version):
                self._refuse_version(info, frame, traffic, now)
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
            if api_key == _PRODUCE and _acks(frame, info.api_version) == 0:
                outgoing.append(frame)  # acks=0: no answer comes, so no place in the order
                continue
            inflight.expect_broker(
                info.correlation_id,
                api_key,
                info.api_version,
                now,
                REWRITERS.get(api_key),
                hinted(api_key, info.api_version),
            )
            outgoing.append(frame)
        return None

    def offer(self, now: float) -> None:
        """
        The frame still arriving, once its header is in: pass it on as it
        arrives when nothing needs it whole, or keep it whole.  Undecided
        while its header is not all there (asked again on the next read).
        """
        reader = self.reader
        head = reader.head()
        if len(head) < 14:  # length, api key, version, correlation id, client id length
            return
        try:
            info = request_info(head)
        except FrameError as e:
            raise Refused(f"bad request from client: {e}") from e
        api_key, version = info.api_key, info.api_version
        if not self.client_id_read:
            if not _client_id_complete(head):
                _wait_or_keep(reader, head)
                return
            self.client_id_read = True
            self.client.client_id = request_client_id(head)
        if not is_offered(api_key, version):
            if api_key != _API_VERSIONS:
                traffic = self.stats.api(api_key)
                traffic.requests += 1
                self.bytes_from_client += len(head)
                self.stats.bytes_from_client += len(head)
                self._refuse_version(info, head, traffic, now)
            reader.keep_whole()  # ApiVersions is answered once whole
            return
        interceptors = self.interceptors
        if api_key in _SASL or (interceptors and interceptors.for_request(api_key, self.client)):
            reader.keep_whole()
            return
        acks = 1
        if api_key == _PRODUCE:
            try:
                acks = produce_acks(head, version)
            except FrameError:
                _wait_or_keep(reader, head)
                return
        self.stats.api(api_key).requests += 1
        if acks != 0:
            self.inflight.expect_broker(
                info.correlation_id,
                api_key,
                version,
                now,
                REWRITERS.get(api_key),
                hinted(api_key, version),
            )
        # The rest goes straight from the reader to the broker as it arrives.
        pieces = reader.pass_on(self.pass_tail)
        received = sum(map(len, pieces))
        self.bytes_from_client += received
        self.stats.bytes_from_client += received
        write_pieces(self.broker, pieces)

    def _expect(self, info: RequestInfo, frame: bytes, now: float, outgoing: list[bytes]) -> None:
        """C{frame} goes to the broker; it takes a place in the order unless it is acks=0."""
        if not (info.api_key == _PRODUCE and _acks(frame, info.api_version) == 0):
            self.inflight.expect_broker(
                info.correlation_id,
                info.api_key,
                info.api_version,
                now,
                REWRITERS.get(info.api_key),
                hinted(info.api_key, info.api_version),
            )
        outgoing.append(frame)

    def _refuse_version(
        self, info: RequestInfo, frame: bytes, traffic: ApiTraffic, now: float
    ) -> None:
        """
        A version the gateway does not offer.  ApiVersions is answered
        UNSUPPORTED_VERSION, as brokers answer it; anything else is refused as
        brokers refuse it: the connection closes (after the earlier answers).
        """
        traffic.error(ErrorReason.UNSUPPORTED_VERSION)
        self.stats.bytes_answered_locally += len(frame)
        if info.api_key != _API_VERSIONS:
            raise Refused(
                f"request api key {info.api_key} v{info.api_version} is above what the "
                "gateway offers; closing, as a broker does, once the requests before it "
                "are answered"
            )
        self.logs.info(
            "{conn}: ApiVersions v{version} is above what the gateway offers; "
            "answered UNSUPPORTED_VERSION",
            conn=self.conn,
            version=info.api_version,
        )
        answer = unsupported_version(info.api_key, info.api_version, info.correlation_id)
        self.inflight.answer_locally(
            info.correlation_id, info.api_key, info.api_version, now, answer
        )

    def _observe_sasl(self, info: RequestInfo, frame: bytes) -> None:
        try:
            self.sasl.request(info.api_key, info.api_version, frame)
        except Exception as e:  # the broker judges the request; we only lose the username
            self.logs.info("{conn}: cannot read the SASL request: {e}", conn=self.conn, e=e)

    def _after(self, info: RequestInfo, call: RequestCall, outcome: Outcome, now: float) -> bytes:
        """Act on the interceptors' outcome; the frame to send on, or b"" if none."""
        if isinstance(outcome, Close):
            raise FrameError(f"closed by an interceptor: {outcome.reason}")
        if isinstance(outcome, Respond):
            answer = encoded(
                encode_response, outcome.message, info.correlation_id, info.api_version
            )
            self.stats.bytes_answered_locally += len(call.frame)
            if info.api_key == _PRODUCE and _acks(call.frame, info.api_version) == 0:
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
            outgoing.clear()
        if rest:
            self.waiting.push_front(rest)
        self.gate.pause(_HELD)
        self.held = HeldRequest(info, call, now, decision)
        return self.held


def _acks(frame: bytes, version: int) -> int:
    """Produce's acks; a request too short to say is refused."""
    try:
        return produce_acks(frame, version)
    except FrameError as e:
        raise Refused(f"bad request from client: {e}") from e


def _client_id_complete(head: bytes) -> bool:
    """Whether the request header's client id is all in C{head}."""
    size = int.from_bytes(head[12:14], "big", signed=True)
    return 14 + max(size, 0) <= len(head)


def _wait_or_keep(reader: FrameStream, head: bytes) -> None:
    """The header is not all in: wait for more, unless that much is already held."""
    if len(head) >= HEAD_BYTES:
        reader.keep_whole()


def encoded(encode: Callable[..., bytes], *args: Any) -> bytes:
    """Encode what an interceptor built; a message the codec cannot encode closes the connection."""
    try:
        return encode(*args)
    except Exception as e:
        raise FrameError(f"cannot encode what an interceptor returned: {e!r}") from e
