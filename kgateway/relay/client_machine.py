"""
The lifecycle of one client connection, as an Automat machine.

    AwaitingRoute --routed--> AwaitingBroker --broker_ready--> Relaying --drain--> Draining

Every state goes to C{Closed} on C{abort} or C{client_lost}; the states
with a broker leg also on C{broker_lost}; the two awaiting states on
C{drain} (nothing is in flight yet); C{AwaitingRoute} on C{unroutable}.
Draining hangs up once the last answer is out, and C{client_lost} follows.

Requests that arrive before the route is known or before the broker leg is
open wait, in order, with the client's transport paused.  Everything that
happens later is an input: the broker opening, responses, the decision of
an interceptor that answered with a Deferred.  A connection that closed in
the meantime drops such late inputs through its C{Closed} transitions, so
no behaviour asks whether the connection is still open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Concatenate, ParamSpec
from typing import Protocol as TypingProtocol

from automat import TypeMachineBuilder
from twisted.logger import Logger

from kgateway.interceptors.api import ClientInfo, Outcome
from kgateway.interceptors.identity import SaslObserver
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interfaces import ConnectionView, IAddressPlanner
from kgateway.metrics import TrafficStats
from kgateway.net import Connector
from kgateway.protocol.framing import FrameError
from kgateway.relay.broker_leg import BrokerLeg, open_broker_leg
from kgateway.relay.inflight import InFlight
from kgateway.relay.requests import HeldRequest, RequestPath, WaitingFrames
from kgateway.relay.responses import HeldResponse, ResponsePath
from kgateway.relay.transport import Transport
from kgateway.routing.router import Route

log = Logger()

P = ParamSpec("P")


class ClientInputs(TypingProtocol):
    """The inputs of a client connection's machine (also its broker leg's owner)."""

    def routed(self, route: Route) -> None:
        """The router decided where the connection goes."""

    def unroutable(self, reason: str) -> None:
        """The router found no broker for the connection."""

    def broker_ready(self, broker: BrokerLeg, transport: Transport) -> None:
        """The broker connection is open on C{transport}."""

    def requests(self, frames: list[bytes]) -> None:
        """Whole request frames arrived from the client."""

    def responses(self, frames: list[list[bytes]]) -> None:
        """Whole response frames arrived from the broker, each as the pieces it arrived in."""

    def request_decided(self, outcome: Outcome, held: HeldRequest) -> None:
        """The interceptors decided on the request they held."""

    def response_decided(self, outcome: Outcome, held: HeldResponse) -> None:
        """The interceptors decided on a broker answer they held."""

    def broker_lost(self, reason: str) -> None:
        """The broker connection failed or closed."""

    def client_lost(self, reason: str) -> None:
        """The client's connection closed."""

    def drain(self) -> None:
        """Stop taking requests, deliver the answers in flight, then close."""

    def abort(self, reason: str) -> None:
        """A protocol error: close both sides at once."""


class RelaySettings(TypingProtocol):
    """What every connection of one listener shares (its factory provides it)."""

    planner: IAddressPlanner
    connect: Connector
    stats: TrafficStats
    interceptors: InterceptorSet | None
    max_frame_bytes: int
    #: Monotonic seconds: request latencies and connection ages.
    now: Callable[[], float]


@dataclass(eq=False)
class ClientCore:
    """One client connection's state, shared by the machine's behaviours."""

    transport: Transport
    #: The client's address, "host:port".
    peer: str
    settings: RelaySettings
    inflight: InFlight = field(default_factory=InFlight)
    #: The one queue of requests that cannot go on yet.
    waiting: WaitingFrames = field(default_factory=WaitingFrames)
    route: Route | None = None
    #: The subject of the client's TLS certificate (mTLS), known before the route.
    principal: str | None = None
    # Set together by the transition that learns the route, and read only by
    # the states after it, so none of them asks whether they are there.
    broker: BrokerLeg = field(init=False, repr=False)
    requests: RequestPath = field(init=False, repr=False)
    responses: ResponsePath = field(init=False, repr=False)

    def describe(self) -> str:
        """The connection, for log lines."""
        route = self.route
        if route is None:
            return f"client {self.peer}"
        return f"client {self.peer} (broker {route.broker_id} at {route.address})"

    def view(self, port: int | None, age_seconds: float) -> ConnectionView:
        """What the admin API shows of this connection now."""
        route = self.route
        if route is None:  # nothing relayed yet
            return ConnectionView(
                self.peer, port, None, None, None, 0, 0, 0, age_seconds, self.principal
            )
        return ConnectionView(
            peer=self.peer,
            port=port,
            broker_id=route.broker_id,
            upstream=route.address,
            client_id=self.requests.client.client_id,
            bytes_from_client=self.requests.bytes_from_client,
            bytes_to_client=self.responses.bytes_to_client,
            in_flight=len(self.inflight),
            age_seconds=age_seconds,
            principal=self.principal,
        )


Behaviour = Callable[Concatenate[ClientInputs, ClientCore, P], None]


def _closes_on_protocol_error(behaviour: Behaviour[P]) -> Behaviour[P]:
    """
    The one place where a protocol error on the data path (a bad frame, an
    unpairable response, an interceptor's Close) closes the connection.
    """

    @wraps(behaviour)
    def guarded(leg: ClientInputs, core: ClientCore, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            behaviour(leg, core, *args, **kwargs)
        except FrameError as e:
            # Automat runs this input after the current one (it is re-entrant).
            leg.abort(str(e))

    return guarded


def _wait_for_request(leg: ClientInputs, held: HeldRequest) -> None:
    held.decision.addCallback(leg.request_decided, held)


def _wait_for_responses(leg: ClientInputs, held: list[HeldResponse]) -> None:
    for each in held:
        each.decision.addCallback(leg.response_decided, each)


def _build() -> Callable[[ClientCore], ClientInputs]:
    machine = TypeMachineBuilder(ClientInputs, ClientCore)
    AwaitingRoute = machine.state("AwaitingRoute")
    AwaitingBroker = machine.state("AwaitingBroker")
    Relaying = machine.state("Relaying")
    Draining = machine.state("Draining")
    Closed = machine.state("Closed")

    @AwaitingRoute.upon(ClientInputs.requests).loop()
    @AwaitingBroker.upon(ClientInputs.requests).loop()
    def wait(leg: ClientInputs, core: ClientCore, frames: list[bytes]) -> None:
        # The transport is paused: at most the rest of one read arrives.
        core.waiting.add(frames)

    @AwaitingRoute.upon(ClientInputs.routed).to(AwaitingBroker)
    def open_broker(leg: ClientInputs, core: ClientCore, route: Route) -> None:
        settings = core.settings
        core.route = route
        log.info(
            "client {peer} connected on the port of broker {broker}; relaying to {endpoint}",
            peer=core.peer,
            broker=route.broker_id,
            endpoint=str(route.address),
        )
        settings.stats.client_connections_opened += 1
        # The leg reports to this machine; a report made while it is being
        # opened (a refused connection) runs once this behaviour is done.
        core.broker = open_broker_leg(
            route.address, leg, settings.connect, settings.max_frame_bytes, settings.stats
        )
        client = ClientInfo(core.peer, route.broker_id, principal=core.principal)
        conn = core.describe()
        sasl = SaslObserver()
        interceptors = settings.interceptors
        core.requests = RequestPath(
            client,
            conn,
            core.inflight,
            core.waiting,
            core.transport,
            settings.stats,
            settings.now,
            interceptors,
            sasl,
        )
        core.responses = ResponsePath(
            client,
            conn,
            core.inflight,
            core.transport,
            settings.planner,
            settings.stats,
            settings.now,
            interceptors,
            sasl,
        )

    @AwaitingRoute.upon(ClientInputs.unroutable).to(Closed)
    def refuse_unroutable(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        log.warn("client {peer} {reason}; closing", peer=core.peer, reason=reason)
        core.waiting.clear()
        core.transport.loseConnection()

    @AwaitingBroker.upon(ClientInputs.broker_ready).to(Relaying)
    @_closes_on_protocol_error
    def start_relaying(
        leg: ClientInputs, core: ClientCore, broker: BrokerLeg, transport: Transport
    ) -> None:
        # Push-producer backpressure both ways, as in twisted.protocols.portforward:
        # a side whose writes back up pauses reading on the other side.
        transport.registerProducer(core.transport, True)
        core.transport.registerProducer(transport, True)
        core.transport.resumeProducing()
        core.requests.start(transport)
        frames = core.waiting.take()
        if frames:
            held = core.requests.admit(frames)
            core.responses.deliver_ready()
            if held is not None:
                _wait_for_request(leg, held)

    @Relaying.upon(ClientInputs.requests).loop()
    @_closes_on_protocol_error
    def relay_requests(leg: ClientInputs, core: ClientCore, frames: list[bytes]) -> None:
        held = core.requests.admit(frames)
        core.responses.deliver_ready()
        if held is not None:
            _wait_for_request(leg, held)

    @Relaying.upon(ClientInputs.responses).loop()
    @_closes_on_protocol_error
    def relay_responses(leg: ClientInputs, core: ClientCore, frames: list[list[bytes]]) -> None:
        held = core.responses.relay(frames)
        if held:
            _wait_for_responses(leg, held)

    @Relaying.upon(ClientInputs.request_decided).loop()
    @_closes_on_protocol_error
    def resume_requests(
        leg: ClientInputs, core: ClientCore, outcome: Outcome, held: HeldRequest
    ) -> None:
        requests = core.requests
        requests.settle(held, outcome)
        again = requests.release()
        core.responses.deliver_ready()
        if again is not None:
            _wait_for_request(leg, again)

    @Relaying.upon(ClientInputs.response_decided).loop()
    @_closes_on_protocol_error
    def release_response(
        leg: ClientInputs, core: ClientCore, outcome: Outcome, held: HeldResponse
    ) -> None:
        core.responses.decided(held, outcome)

    @Relaying.upon(ClientInputs.drain).to(Draining)
    def start_draining(leg: ClientInputs, core: ClientCore) -> None:
        log.info("{conn}: draining for shutdown", conn=core.describe())
        core.transport.pauseProducing()
        _close_when_answered(core)

    @Draining.upon(ClientInputs.requests).loop()
    def refuse(leg: ClientInputs, core: ClientCore, frames: list[bytes]) -> None:
        # The client will send these again on its next connection.
        core.transport.pauseProducing()

    @Draining.upon(ClientInputs.responses).loop()
    @_closes_on_protocol_error
    def answer_then_maybe_close(
        leg: ClientInputs, core: ClientCore, frames: list[list[bytes]]
    ) -> None:
        held = core.responses.relay(frames)
        if held:
            _wait_for_responses(leg, held)
        _close_when_answered(core)

    @Draining.upon(ClientInputs.request_decided).loop()
    @_closes_on_protocol_error
    def settle_then_maybe_close(
        leg: ClientInputs, core: ClientCore, outcome: Outcome, held: HeldRequest
    ) -> None:
        # The held request still goes (or is answered); what waited behind it
        # is sent again by the client on its next connection, like any request
        # arriving while the connection drains.
        core.requests.settle(held, outcome)
        core.waiting.clear()
        core.responses.deliver_ready()
        _close_when_answered(core)

    @Draining.upon(ClientInputs.response_decided).loop()
    @_closes_on_protocol_error
    def release_then_maybe_close(
        leg: ClientInputs, core: ClientCore, outcome: Outcome, held: HeldResponse
    ) -> None:
        core.responses.decided(held, outcome)
        _close_when_answered(core)

    Draining.upon(ClientInputs.drain).loop().returns(None)

    @AwaitingRoute.upon(ClientInputs.drain).to(Closed)
    def drop_unrouted(leg: ClientInputs, core: ClientCore) -> None:
        _close_unrouted(core, "gateway shutting down", abort=False)

    @AwaitingRoute.upon(ClientInputs.abort).to(Closed)
    def abort_unrouted(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        _close_unrouted(core, reason, abort=True)

    @AwaitingRoute.upon(ClientInputs.client_lost).to(Closed)
    def client_gone_unrouted(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        log.info(
            "{conn}: client closed the connection ({reason}) before it was routed",
            conn=core.describe(),
            reason=reason,
        )
        core.waiting.clear()

    @AwaitingBroker.upon(ClientInputs.drain).to(Closed)
    def drop_early(leg: ClientInputs, core: ClientCore) -> None:
        _close(core, "gateway shutting down", abort=False)

    @AwaitingBroker.upon(ClientInputs.broker_lost).to(Closed)
    @Relaying.upon(ClientInputs.broker_lost).to(Closed)
    @Draining.upon(ClientInputs.broker_lost).to(Closed)
    def broker_gone(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        _close(core, reason, abort=False)

    @AwaitingBroker.upon(ClientInputs.abort).to(Closed)
    @Relaying.upon(ClientInputs.abort).to(Closed)
    @Draining.upon(ClientInputs.abort).to(Closed)
    def protocol_error(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        _close(core, reason, abort=True)

    @AwaitingBroker.upon(ClientInputs.client_lost).to(Closed)
    @Relaying.upon(ClientInputs.client_lost).to(Closed)
    @Draining.upon(ClientInputs.client_lost).to(Closed)
    def client_gone(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        log.info(
            "{conn}: client closed the connection ({reason}); {sent} bytes up, {got} bytes down",
            conn=core.describe(),
            reason=reason,
            sent=core.requests.bytes_from_client,
            got=core.responses.bytes_to_client,
        )
        _finish(core)
        core.broker.close("client closed")

    # A closed connection drops whatever still arrives: a late route, frames,
    # an interceptor's decision, a second close.
    Closed.upon(ClientInputs.routed).loop().returns(None)
    Closed.upon(ClientInputs.unroutable).loop().returns(None)
    Closed.upon(ClientInputs.requests).loop().returns(None)
    Closed.upon(ClientInputs.responses).loop().returns(None)
    Closed.upon(ClientInputs.request_decided).loop().returns(None)
    Closed.upon(ClientInputs.response_decided).loop().returns(None)
    Closed.upon(ClientInputs.broker_lost).loop().returns(None)
    Closed.upon(ClientInputs.client_lost).loop().returns(None)
    Closed.upon(ClientInputs.drain).loop().returns(None)
    Closed.upon(ClientInputs.abort).loop().returns(None)

    @Closed.upon(ClientInputs.broker_ready).loop()
    def late_broker(
        leg: ClientInputs, core: ClientCore, broker: BrokerLeg, transport: Transport
    ) -> None:
        broker.close("client already gone")

    return machine.build()


def _close_when_answered(core: ClientCore) -> None:
    if not core.inflight:
        core.transport.loseConnection()


def _finish(core: ClientCore) -> None:
    """The connection is over: what still waits is dropped, and counted if it was sent."""
    core.waiting.clear()
    unanswered = core.inflight.abandon()
    if unanswered:
        core.settings.stats.unanswered(unanswered)


def _close(core: ClientCore, reason: str, abort: bool) -> None:
    """Close a routed connection and its broker leg, saying why."""
    level = log.warn if abort else log.info
    level("{conn}: closing: {reason}", conn=core.describe(), reason=reason)
    _finish(core)
    core.broker.close(reason)
    if abort:
        core.transport.abortConnection()
    else:
        core.transport.loseConnection()


def _close_unrouted(core: ClientCore, reason: str, abort: bool) -> None:
    """Close a connection that has no broker leg yet, saying why."""
    level = log.warn if abort else log.info
    level("{conn}: closing: {reason}", conn=core.describe(), reason=reason)
    core.waiting.clear()
    if abort:
        core.transport.abortConnection()
    else:
        core.transport.loseConnection()


# Built last: Automat resolves the input protocol's annotations at build time.
new_client_machine = _build()
