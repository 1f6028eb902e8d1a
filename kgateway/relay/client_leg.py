"""
The client leg: one accepted client connection on a broker's port.

It cuts the client's stream into request frames, reads only their headers,
sends them to its broker leg in order, and hands the broker's responses
back, rewriting the ones that carry broker addresses.  Its lifecycle
(awaiting the broker, relaying, draining, closed) is an Automat machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from typing import Protocol as TypingProtocol

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, ITransport
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from kgateway.interceptors.api import ClientInfo, Close, Outcome, RequestCall, Respond, ResponseCall
from kgateway.interceptors.chain import run_request_chain, run_response_chain
from kgateway.interceptors.identity import SASL_AUTHENTICATE, SASL_HANDSHAKE, SaslObserver
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interfaces import IAddressPlanner, IRelayedConnection
from kgateway.metrics import ErrorReason, TrafficStats
from kgateway.net import Connector, HostPort
from kgateway.protocol.codec import encode_request, encode_response
from kgateway.protocol.errors import CannotAnswer, unsupported_version
from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader
from kgateway.protocol.headers import (
    PRODUCE,
    RequestInfo,
    produce_acks,
    request_client_id,
    request_info,
    response_correlation_id,
)
from kgateway.protocol.rewrite import REWRITERS, passes_unchanged
from kgateway.protocol.versions import is_offered
from kgateway.relay.broker_leg import BrokerLeg, IBrokerLegOwner, open_broker_leg
from kgateway.relay.inflight import InFlight, Pending
from kgateway.relay.transport import Transport, no_delay, write_pieces

log = Logger()


class ClientLeg(TypingProtocol):
    """The inputs of a client leg."""

    def broker_ready(self, broker: BrokerLeg, wire: ITransport) -> None:
        """The broker connection is open on C{wire}."""

    def requests(self, frames: list[bytes]) -> None:
        """Whole request frames arrived from the client."""

    def responses(self, frames: list[list[bytes]]) -> None:
        """Whole response frames arrived from the broker, each as the pieces it arrived in."""

    def broker_lost(self, reason: str) -> None:
        """The broker connection failed or closed."""

    def client_lost(self, reason: str) -> None:
        """The client's connection closed."""

    def drain(self) -> None:
        """Stop taking requests, deliver the answers in flight, then close."""

    def abort(self, reason: str) -> None:
        """A protocol error: close both sides at once."""


@dataclass
class ClientLegCore:
    """Everything one client connection needs, shared by the machine's behaviours."""

    transport: ITransport
    peer: str
    broker_id: int
    endpoint: HostPort
    mapper: IAddressPlanner
    connect: Connector
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    clock: Callable[[], float] = time.monotonic
    inflight: InFlight = field(default_factory=InFlight)
    broker: BrokerLeg | None = None
    held: list[bytes] = field(default_factory=list)
    bytes_from_client: int = 0
    bytes_to_client: int = 0
    #: The node's counters, shared by all its connections.
    stats: TrafficStats = field(default_factory=TrafficStats)
    #: The client id of the connection's first request (None if it had none).
    client_id: str | None = None
    client_id_read: bool = False
    #: The interceptors configured on the node (None: none can ever run).
    interceptors: InterceptorSet | None = None
    #: Who the client is, for interceptors' scopes.
    client: ClientInfo | None = None
    #: An interceptor is still deciding on a request; later frames wait behind it.
    held_by_interceptor: Deferred[Outcome] | None = None
    backlog: list[bytes] = field(default_factory=list)
    #: Closes the connection from an asynchronous interceptor's answer (the machine's abort).
    abort: Callable[[str], None] = lambda reason: None
    closed: bool = False
    #: Reads the SASL/PLAIN username for interceptor scopes (created on the first SASL request).
    sasl: SaslObserver | None = None

    def client_key(self) -> str:
        """Who the client is for the mapping: its host and client id (not its port)."""
        return f"{self.peer.rpartition(':')[0]}|{self.client_id or ''}"

    def describe(self) -> str:
        return f"client {self.peer} (broker {self.broker_id} at {self.endpoint})"

    def forward(self, frames: list[bytes]) -> None:
        """Send request frames on, noting the ones that expect an answer."""
        stats = self.stats
        received = sum(map(len, frames))
        self.bytes_from_client += received
        stats.bytes_from_client += received
        if not self.client_id_read and frames:
            self.client_id_read = True
            self.client_id = request_client_id(frames[0])
            if self.client is not None:
                self.client.client_id = self.client_id
        if self.held_by_interceptor is not None:
            # Kafka answers a connection's requests in order, and producers rely
            # on the broker seeing them in order: wait for the held one.
            self.backlog.extend(frames)
            self.transport.pauseProducing()  # type: ignore[attr-defined]
            return
        self._forward(frames)

    def _forward(self, frames: list[bytes]) -> None:
        stats = self.stats
        apis = stats.apis
        interceptors = self.interceptors
        outgoing: list[bytes] = []
        for index, frame in enumerate(frames):
            info = request_info(frame)
            traffic = apis.get(info.api_key) or stats.api(info.api_key)
            traffic.requests += 1
            now = self.clock()
            if not is_offered(info.api_key, info.api_version):
                try:
                    answer = unsupported_version(
                        info.api_key, info.api_version, info.correlation_id
                    )
                except CannotAnswer as e:
                    raise FrameError(
                        f"request api key {info.api_key} v{info.api_version} is above what "
                        f"the gateway offers, and {e}"
                    ) from e
                log.info(
                    "{conn}: api key {key} v{version} is not offered; answered UNSUPPORTED_VERSION",
                    conn=self.describe(),
                    key=info.api_key,
                    version=info.api_version,
                )
                traffic.error(ErrorReason.UNSUPPORTED_VERSION)
                stats.bytes_answered_locally += len(frame)
                self.inflight.expect(
                    Pending(
                        info.correlation_id,
                        info.api_key,
                        info.api_version,
                        now,
                        local_response=answer,
                    )
                )
                continue
            if info.api_key in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
                self._observe_sasl(info, frame)
            if interceptors and self.client is not None:
                chain = interceptors.for_request(info.api_key, self.client)
                if chain:
                    call = RequestCall(
                        self.client, info.api_key, info.api_version, info.correlation_id, frame
                    )
                    outcome = run_request_chain(chain, call)
                    if isinstance(outcome, Deferred):
                        self._hold(outcome, info, call, now, frames[index + 1 :], outgoing)
                        return
                    frame = self._settle(info, call, outcome, now, outgoing)
                    if not frame:
                        continue
            self._send(info, frame, now, outgoing)
        self._send_all(outgoing)

    def _observe_sasl(self, info: RequestInfo, frame: bytes) -> None:
        if self.sasl is None:
            self.sasl = SaslObserver()
        try:
            self.sasl.request(info.api_key, info.api_version, frame)
        except Exception as e:  # the broker judges the request; we only lose the username
            log.info("{conn}: cannot read the SASL request: {e}", conn=self.describe(), e=e)

    def _learn_username(self, pending: Pending, frame: bytes) -> None:
        assert self.sasl is not None
        try:
            username = self.sasl.response(pending.api_key, pending.api_version, frame)
        except Exception as e:
            log.info("{conn}: cannot read the SASL answer: {e}", conn=self.describe(), e=e)
            return
        if username is not None and self.client is not None:
            self.client.username = username
            log.info("{conn}: authenticated as {user}", conn=self.describe(), user=username)

    def _send(self, info: RequestInfo, frame: bytes, now: float, outgoing: list[bytes]) -> None:
        if info.api_key == PRODUCE and produce_acks(frame, info.api_version) == 0:
            outgoing.append(frame)
            return
        self.inflight.expect(
            Pending(
                info.correlation_id,
                info.api_key,
                info.api_version,
                now,
                REWRITERS.get(info.api_key),
            )
        )
        outgoing.append(frame)

    def _send_all(self, outgoing: list[bytes]) -> None:
        if outgoing:
            assert self.broker is not None
            self.broker.send(outgoing)
        self.flush()

    def _settle(
        self,
        info: RequestInfo,
        call: RequestCall,
        outcome: Outcome,
        now: float,
        outgoing: list[bytes],
    ) -> bytes:
        """Act on the interceptors' outcome; the frame to send on, or b"" if none."""
        if isinstance(outcome, Close):
            raise FrameError(f"closed by an interceptor: {outcome.reason}")
        if isinstance(outcome, Respond):
            answer = _encoded(
                encode_response, outcome.message, info.correlation_id, info.api_version
            )
            self.stats.bytes_answered_locally += len(call.frame)
            if info.api_key == PRODUCE and produce_acks(call.frame, info.api_version) == 0:
                return b""  # acks=0: the client expects no answer, even a refusal
            self.inflight.expect(
                Pending(
                    info.correlation_id,
                    info.api_key,
                    info.api_version,
                    now,
                    local_response=answer,
                )
            )
            return b""
        if call.changed:
            return _encoded(encode_request, call.message)
        return call.frame

    def _hold(
        self,
        decision: Deferred[Outcome],
        info: RequestInfo,
        call: RequestCall,
        now: float,
        rest: list[bytes],
        outgoing: list[bytes],
    ) -> None:
        """An interceptor answers later: send what came before, keep the rest until it does."""
        self._send_all(outgoing)
        self.backlog = rest + self.backlog
        self.transport.pauseProducing()  # type: ignore[attr-defined]

        def decided(outcome: Outcome) -> None:
            self.held_by_interceptor = None
            if self.closed:
                return
            sent: list[bytes] = []
            try:
                frame = self._settle(info, call, outcome, now, sent)
                if frame:
                    self._send(info, frame, now, sent)
                self._send_all(sent)
                backlog, self.backlog = self.backlog, []
                if backlog:
                    self._forward(backlog)
            except Exception as e:  # FrameError, or the codec failing on a changed request
                self.abort(str(e))
                return
            if self.held_by_interceptor is None and not self.closed:
                self.transport.resumeProducing()  # type: ignore[attr-defined]

        self.held_by_interceptor = decision
        decision.addCallback(decided)

    def answer(self, frames: list[bytes]) -> None:
        """Pair broker responses with requests, rewrite where needed, and reply in order."""
        for frame in frames:
            pending = self.inflight.answered(frame)
            if pending.rewriter is None:
                pending.local_response = frame
            else:
                try:
                    rewritten = pending.rewriter(
                        frame, pending.api_version, self.mapper.mapping(self.client_key())
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
                pending.local_response = rewritten
            if pending.api_key == SASL_AUTHENTICATE and self.sasl is not None:
                self._learn_username(pending, frame)
            interceptors = self.interceptors
            if interceptors and self.client is not None:
                chain = interceptors.for_response(pending.api_key, self.client)
                if chain:
                    self._intercept_response(chain, pending)
        self.flush()

    def _intercept_response(self, chain: tuple[Any, ...], pending: Pending) -> None:
        assert self.client is not None and pending.local_response is not None
        call = ResponseCall(
            self.client,
            pending.api_key,
            pending.api_version,
            pending.correlation_id,
            pending.local_response,
        )
        pending.received = True
        pending.local_response = None
        outcome = run_response_chain(chain, call)
        if not isinstance(outcome, Deferred):
            pending.local_response = self._response_after(call, outcome)
            return

        def decided(outcome: Outcome) -> None:
            if self.closed:
                return
            try:
                pending.local_response = self._response_after(call, outcome)
                self.flush()
            except Exception as e:  # FrameError, or the codec failing on a changed response
                self.abort(str(e))

        outcome.addCallback(decided)

    def _response_after(self, call: ResponseCall, outcome: Outcome) -> bytes:
        if isinstance(outcome, Close):
            raise FrameError(f"closed by an interceptor: {outcome.reason}")
        if isinstance(outcome, Respond):
            return _encoded(encode_response, outcome.message, call.correlation_id, call.api_version)
        if call.changed:
            return _encoded(encode_response, call.message, call.correlation_id, call.api_version)
        return call.frame

    def flush(self) -> None:
        done = self.inflight.take_ready()
        if done:
            ready: list[bytes] = [pending.local_response for pending in done]  # type: ignore[misc]
            self._delivered(done, ready)

    def _delivered(self, done: list[Pending], pieces: list[bytes]) -> None:
        sent = sum(map(len, pieces))
        self.bytes_to_client += sent
        self.stats.bytes_to_client += sent
        self.stats.delivered(done, self.clock())
        write_pieces(cast(Transport, self.transport), pieces)

    def relay_responses(self, frames: list[list[bytes]]) -> None:
        """
        Hand broker responses to the client: as the pieces they arrived in when
        nothing in them changes, the others whole through L{answer}.

        A response goes on as it is when it is next in line for the client,
        no interceptor wants it, and it needs no rewriting; a large Fetch
        response is then never joined into one bytes object.
        """
        done: list[Pending] = []
        out: list[bytes] = []
        whole: list[bytes] = []
        for pieces in frames:
            # After one response takes the whole path, the rest of this read
            # follows it there, so the client gets them in order.
            if not whole:
                pending = self._pass_through(pieces)
                if pending is not None:
                    done.append(pending)
                    out.extend(pieces)
                    # Answers the gateway made itself may have waited behind it.
                    for ready in self.inflight.take_ready():
                        done.append(ready)
                        out.append(ready.local_response)  # type: ignore[arg-type]
                    continue
            whole.append(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if done:
            # One write for the read's responses, as flush() does.
            self._delivered(done, out)
        if whole:
            self.answer(whole)

    def _pass_through(self, pieces: list[bytes]) -> Pending | None:
        """Take the request this response answers if the response can go on as it is."""
        queue = self.inflight.queue
        if not queue:
            return None
        head = queue[0]
        # Earlier answers still waiting (for an interceptor) go first.
        if head.local_response is not None or head.received:
            return None
        first = pieces[0]
        if len(first) < 8:
            # The read ended inside the header; pieces are never empty.
            first = b"".join(pieces[:8])
        # A frame too short or a stranger's correlation id: answer() reports it.
        if len(first) < 8 or response_correlation_id(first) != head.correlation_id:
            return None
        # A SASL login's answer tells whether its username counts (answer() reads it).
        if head.api_key == SASL_AUTHENTICATE and self.sasl is not None:
            return None
        interceptors = self.interceptors
        if (
            interceptors
            and self.client is not None
            and interceptors.for_response(head.api_key, self.client)
        ):
            return None
        if head.rewriter is not None and not passes_unchanged(
            head.rewriter, pieces, head.api_version
        ):
            return None
        return queue.popleft()

    def finish(self) -> None:
        """The connection is over: the requests still waiting were never answered."""
        self.closed = True
        self.backlog.clear()
        if self.inflight:
            self.stats.unanswered(self.inflight.queue)
            self.inflight.queue.clear()


def _encoded(encode: Callable[..., bytes], *args: Any) -> bytes:
    """Encode what an interceptor built; a message the codec cannot encode closes the connection."""
    try:
        return encode(*args)
    except Exception as e:
        raise FrameError(f"cannot encode what an interceptor returned: {e!r}") from e


def _build() -> Callable[[ClientLegCore], ClientLeg]:
    machine = TypeMachineBuilder(ClientLeg, ClientLegCore)
    AwaitingBroker = machine.state("AwaitingBroker")
    Relaying = machine.state("Relaying")
    Draining = machine.state("Draining")
    Closed = machine.state("Closed")

    @AwaitingBroker.upon(ClientLeg.requests).loop()
    def hold(leg: ClientLeg, core: ClientLegCore, frames: list[bytes]) -> None:
        core.held.extend(frames)

    @AwaitingBroker.upon(ClientLeg.broker_ready).to(Relaying)
    def start_relaying(
        leg: ClientLeg, core: ClientLegCore, broker: BrokerLeg, wire: ITransport
    ) -> None:
        core.broker = broker
        held, core.held = core.held, []
        # Push-producer backpressure both ways, as in twisted.protocols.portforward:
        # a side whose writes back up pauses reading on the other side.
        wire.registerProducer(core.transport, True)  # type: ignore[attr-defined]
        core.transport.registerProducer(wire, True)  # type: ignore[attr-defined]
        core.transport.resumeProducing()  # type: ignore[attr-defined]
        try:
            if held:
                core.forward(held)
        except FrameError as e:
            leg.abort(str(e))

    @Relaying.upon(ClientLeg.requests).loop()
    def relay(leg: ClientLeg, core: ClientLegCore, frames: list[bytes]) -> None:
        try:
            core.forward(frames)
        except FrameError as e:
            leg.abort(str(e))

    @Relaying.upon(ClientLeg.responses).loop()
    def reply(leg: ClientLeg, core: ClientLegCore, frames: list[list[bytes]]) -> None:
        try:
            core.relay_responses(frames)
        except FrameError as e:
            leg.abort(str(e))

    @Draining.upon(ClientLeg.responses).loop()
    def reply_then_maybe_close(
        leg: ClientLeg, core: ClientLegCore, frames: list[list[bytes]]
    ) -> None:
        try:
            core.relay_responses(frames)
        except FrameError as e:
            leg.abort(str(e))
            return
        if not core.inflight:
            core.transport.loseConnection()

    @Draining.upon(ClientLeg.requests).loop()
    def refuse(leg: ClientLeg, core: ClientLegCore, frames: list[bytes]) -> None:
        # The client will send these again on its next connection.
        core.transport.pauseProducing()  # type: ignore[attr-defined]

    @Relaying.upon(ClientLeg.drain).to(Draining)
    def start_draining(leg: ClientLeg, core: ClientLegCore) -> None:
        log.info("{conn}: draining for shutdown", conn=core.describe())
        core.transport.pauseProducing()  # type: ignore[attr-defined]
        if not core.inflight:
            core.transport.loseConnection()

    @AwaitingBroker.upon(ClientLeg.drain).to(Closed)
    def drop_early(leg: ClientLeg, core: ClientLegCore) -> None:
        _close(core, "gateway shutting down", abort=False)

    @AwaitingBroker.upon(ClientLeg.broker_lost).to(Closed)
    @Relaying.upon(ClientLeg.broker_lost).to(Closed)
    @Draining.upon(ClientLeg.broker_lost).to(Closed)
    def broker_gone(leg: ClientLeg, core: ClientLegCore, reason: str) -> None:
        _close(core, reason, abort=False)

    @AwaitingBroker.upon(ClientLeg.abort).to(Closed)
    @Relaying.upon(ClientLeg.abort).to(Closed)
    @Draining.upon(ClientLeg.abort).to(Closed)
    def protocol_error(leg: ClientLeg, core: ClientLegCore, reason: str) -> None:
        _close(core, reason, abort=True)

    @AwaitingBroker.upon(ClientLeg.client_lost).to(Closed)
    @Relaying.upon(ClientLeg.client_lost).to(Closed)
    @Draining.upon(ClientLeg.client_lost).to(Closed)
    def client_gone(leg: ClientLeg, core: ClientLegCore, reason: str) -> None:
        log.info(
            "{conn}: client closed the connection ({reason}); {sent} bytes up, {got} bytes down",
            conn=core.describe(),
            reason=reason,
            sent=core.bytes_from_client,
            got=core.bytes_to_client,
        )
        core.finish()
        if core.broker is not None:
            core.broker.close("client closed")

    Closed.upon(ClientLeg.requests).loop().returns(None)
    Closed.upon(ClientLeg.responses).loop().returns(None)
    Closed.upon(ClientLeg.broker_lost).loop().returns(None)
    Closed.upon(ClientLeg.client_lost).loop().returns(None)
    Closed.upon(ClientLeg.drain).loop().returns(None)
    Closed.upon(ClientLeg.abort).loop().returns(None)
    Draining.upon(ClientLeg.drain).loop().returns(None)

    @Closed.upon(ClientLeg.broker_ready).loop()
    def late_broker(
        leg: ClientLeg, core: ClientLegCore, broker: BrokerLeg, wire: ITransport
    ) -> None:
        broker.close("client already gone")

    return machine.build()


def _close(core: ClientLegCore, reason: str, abort: bool) -> None:
    level = log.warn if abort else log.info
    level("{conn}: closing: {reason}", conn=core.describe(), reason=reason)
    core.finish()
    if core.broker is not None:
        core.broker.close(reason)
    if abort:
        core.transport.abortConnection()  # type: ignore[attr-defined]
    else:
        core.transport.loseConnection()


@implementer(IBrokerLegOwner)
class _OwnerAdapter:
    """Lets a broker leg talk to a client leg's machine."""

    def __init__(self, leg: ClientLeg) -> None:
        self._leg = leg

    def broker_ready(self, leg: BrokerLeg, transport: ITransport) -> None:
        self._leg.broker_ready(leg, transport)

    def responses(self, frames: list[list[bytes]]) -> None:
        self._leg.responses(frames)

    def broker_lost(self, reason: str) -> None:
        self._leg.broker_lost(reason)


#: Picks the broker a connection on a port is relayed to: (broker id, endpoint) -> endpoint.
BrokerChooser = Callable[[int], HostPort | None]


@implementer(IRelayedConnection)
class ClientWire(Protocol):
    """The Twisted protocol for an accepted client connection."""

    def __init__(self, factory: ClientLegFactory, peer: str) -> None:
        self.factory = factory
        self.peer = peer
        self.broker_id = factory.broker_id
        self.reader = FrameReader(factory.max_frame_bytes)
        self.leg: ClientLeg | None = None
        #: The leg's shared state, for the admin API's view of connections.
        self.core: ClientLegCore | None = None
        self.opened_at = factory.clock()
        self._lost = False
        self._close_waiters: list[Deferred[None]] = []

    def connectionMade(self) -> None:
        endpoint = self.factory.choose(self.broker_id)
        if endpoint is None:
            log.warn(
                "client {peer} on the port for broker {broker}: no broker is reachable; closing",
                peer=self.peer,
                broker=self.broker_id,
            )
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        log.info(
            "client {peer} connected on the port of broker {broker}; relaying to {endpoint}",
            peer=self.peer,
            broker=self.broker_id,
            endpoint=str(endpoint),
        )
        self.factory.stats.client_connections_opened += 1
        no_delay(self.transport)
        # Read nothing until the broker connection is open.
        self.transport.pauseProducing()  # type: ignore[union-attr]
        core = ClientLegCore(
            transport=self.transport,  # type: ignore[arg-type]
            peer=self.peer,
            broker_id=self.broker_id,
            endpoint=endpoint,
            mapper=self.factory.mapper,
            connect=self.factory.connect,
            max_frame_bytes=self.factory.max_frame_bytes,
            clock=self.factory.clock,
            stats=self.factory.stats,
            interceptors=self.factory.interceptors,
            client=ClientInfo(self.peer, self.broker_id),
        )
        self.core = core
        self.leg = _new_client_leg(core)
        core.abort = self.leg.abort
        self.factory.connections.add(self)
        open_broker_leg(
            endpoint,
            _OwnerAdapter(self.leg),
            self.factory.connect,
            self.factory.max_frame_bytes,
            self.factory.stats,
        )

    def dataReceived(self, data: bytes) -> None:
        assert self.leg is not None
        try:
            frames = self.reader.feed(data)
        except FrameError as e:
            self.leg.abort(f"bad frame from client: {e}")
            return
        if frames:
            self.leg.requests(frames)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self.factory.connections.discard(self)
        if self.leg is not None:
            self.leg.client_lost(reason.getErrorMessage())
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    def when_closed(self) -> Deferred[None]:
        """Fires once the client connection has closed (so shutdown can wait for a drain)."""
        if self._lost:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._close_waiters.append(waiter)
        return waiter

    def drain(self) -> None:
        """Stop taking requests, deliver the answers in flight, then close."""
        if self.leg is not None:
            self.leg.drain()


class ClientLegFactory(ServerFactory):
    """Accepts client connections on the port that stands for one broker id."""

    noisy = False

    def __init__(
        self,
        broker_id: int,
        choose: BrokerChooser,
        mapper: IAddressPlanner,
        connect: Connector,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        stats: TrafficStats | None = None,
        clock: Callable[[], float] = time.monotonic,
        interceptors: InterceptorSet | None = None,
    ) -> None:
        self.broker_id = broker_id
        #: The node's interceptors, shared by every connection (None: none).
        self.interceptors = interceptors
        self.choose = choose
        self.mapper = mapper
        self.connect = connect
        self.max_frame_bytes = max_frame_bytes
        self.stats = stats if stats is not None else TrafficStats()
        #: Monotonic seconds: request latencies and connection ages.
        self.clock = clock
        self.connections: set[ClientWire] = set()

    def buildProtocol(self, addr: IAddress | None) -> ClientWire:
        host = getattr(addr, "host", "?")
        port = getattr(addr, "port", "?")
        return ClientWire(self, f"{host}:{port}")


# Built last: Automat resolves the input protocol's annotations at build time.
_new_client_leg = _build()
