"""
The lifecycle of one client connection, as an Automat machine.

    AwaitingRoute --routed--> AwaitingBroker --broker_ready--> Relaying --drain--> Draining
                              AwaitingBroker --broker_unreachable--> AwaitingBroker (the next
                                  fallback broker), or --no_broker_reachable--> Closed
                                                               Relaying --refuse-> Draining

Every state goes to C{Closed} on C{abort}, C{idle} or C{client_lost}; the
states with a broker leg also on C{broker_lost}; the two awaiting states on
C{drain} (nothing is in flight yet); C{AwaitingRoute} on C{unroutable}.
Draining hangs up once the last answer is out, and C{client_lost} follows.
A refusal (a request the gateway refuses, a bad frame, a frame that took
too long) is a drain that says why: the answers to the requests before it
are delivered, then the connection closes.  The awaiting states note a
refusal and act on it once the requests that waited before it went on.

Requests that arrive before the route is known or before the broker leg is
open wait, in order, with the client's transport paused.  Everything that
happens later is an input: the broker opening, responses, the decision of
an interceptor that answered with a Deferred.  A connection that closed in
the meantime drops such late inputs through its C{Closed} transitions, so
no behaviour asks whether the connection is still open.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from automat import TypeMachineBuilder

from kgateway.interceptors.api import ClientInfo, Outcome
from kgateway.interceptors.identity import SaslObserver
from kgateway.protocol.framing import Cut, FrameStream, joined
from kgateway.relay.broker_leg import BrokerLeg, open_broker_leg
from kgateway.relay.client_core import ClientCore
from kgateway.relay.client_inputs import ClientInputs
from kgateway.relay.data_path import (
    LegOwner,
    RelayingData,
    data_path,
    relay_requests,
    relay_responses,
    wait_for_request,
    wait_for_responses,
)
from kgateway.relay.read_gate import ReadGate, Reason
from kgateway.relay.requests import HeldRequest, Refused, RequestPath
from kgateway.relay.responses import HeldResponse, ResponsePath
from kgateway.relay.transport import Transport
from kgateway.routing.router import Route

__all__ = ["ClientInputs", "new_client_machine"]

# Plain ints: the reasons not to read that the machine sets and lifts.
_ROUTING = int(Reason.ROUTING)
#: Connect errors that are this node's (out of descriptors), not the broker's.
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
_CLOSING = int(Reason.CLOSING)


def _build() -> Callable[[ClientCore], ClientInputs]:
    machine = TypeMachineBuilder(ClientInputs, ClientCore)
    AwaitingRoute = machine.state("AwaitingRoute")
    AwaitingBroker = machine.state("AwaitingBroker")
    Relaying = machine.state("Relaying")
    Draining = machine.state("Draining")
    Closed = machine.state("Closed")

    @AwaitingRoute.upon(ClientInputs.requests).loop()
    @AwaitingBroker.upon(ClientInputs.requests).loop()
    @data_path
    def wait(leg: ClientInputs, core: ClientCore, cut: Cut) -> None:
        # The transport is paused: at most the rest of one read arrives.
        # Nothing is passed on before the broker is there.
        core.waiting.add(joined(cut.frames))

    @AwaitingRoute.upon(ClientInputs.refuse).loop()
    @AwaitingBroker.upon(ClientInputs.refuse).loop()
    def refuse_later(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        if not core.waiting:
            # Nothing came before it, so there is nothing to answer first.
            leg.abort(reason)
            return
        # The requests that wait before it go on first, and are answered.
        if core.waiting.refusal is None:
            core.waiting.refusal = reason
        core.gate.pause(_CLOSING)
        core.reader.stop(reason)
        core.account()

    @AwaitingRoute.upon(ClientInputs.routed).to(AwaitingBroker)
    def open_broker(leg: ClientInputs, core: ClientCore, route: Route) -> None:
        settings = core.settings
        settings.logs.info(
            "client {peer} connected on the port of broker {broker}; relaying to {endpoint}",
            peer=core.peer,
            broker=route.broker_id,
            endpoint=str(route.address),
        )
        settings.stats.client_connections_opened += 1
        _connect(leg, core, route)

    @AwaitingBroker.upon(ClientInputs.broker_unreachable).loop()
    def try_another_broker(leg: ClientInputs, core: ClientCore, reason: str, os_error: int) -> None:
        # Issue 16: a port whose broker is down (killed, and still in the
        # metadata) bootstraps as a port without a broker does.  A request
        # meant for the dead broker gets the other broker's not leader / not
        # coordinator, and the client's metadata refresh moves it on.
        core.unreachable.append(reason)
        route = core.route
        if os_error in OUT_OF_DESCRIPTORS:
            # This node is out of descriptors, not the broker down: no other
            # broker would do better.  The node reports it once (saturated).
            core.out_of_descriptors = True
            core.settings.out_of_descriptors(os_error, f"connecting to a broker for {core.peer}")
            leg.no_broker_reachable(reason)
            return
        fallback = route.next_fallback() if route is not None else None
        if fallback is None:
            # Automat runs it once this behaviour is done (it is re-entrant).
            leg.no_broker_reachable("; ".join(core.unreachable))
            return
        core.settings.logs.warn(
            "client {peer} on the port of broker {broker}: {reason}; relaying it to "
            "{endpoint} instead",
            peer=core.peer,
            broker=fallback.broker_id,
            reason=reason,
            endpoint=str(fallback.address),
        )
        _connect(leg, core, fallback)

    @AwaitingBroker.upon(ClientInputs.no_broker_reachable).to(Closed)
    def give_up(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        route = core.route
        # Out of descriptors: the node's one warning says so, not a line per client.
        emit = core.settings.logs.debug if core.out_of_descriptors else core.settings.logs.warn
        emit(
            "client {peer} on the port of broker {broker}: no broker could be reached "
            "({reason}); closing",
            peer=core.peer,
            broker=route.broker_id if route is not None else "?",
            reason=reason,
        )
        core.finish()
        core.transport.loseConnection()

    @AwaitingRoute.upon(ClientInputs.unroutable).to(Closed)
    def refuse_unroutable(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        core.settings.logs.warn("client {peer} {reason}; closing", peer=core.peer, reason=reason)
        core.release()
        core.transport.loseConnection()

    @AwaitingBroker.upon(ClientInputs.broker_ready).to(Relaying)
    @data_path
    def start_relaying(
        leg: ClientInputs,
        core: ClientCore,
        broker: BrokerLeg,
        transport: Transport,
        reader: FrameStream,
    ) -> None:
        # Push-producer backpressure both ways, as in twisted.protocols.portforward:
        # a side whose writes back up pauses reading on the other side.  Each
        # side's gate is what the other side pauses, so no part of the relay
        # lifts a pause another part set.
        broker_gate = ReadGate(transport)
        transport.registerProducer(core.gate, True)
        core.transport.registerProducer(broker_gate, True)
        core.holding.add_gate(broker_gate)
        core.broker_stream = transport
        core.broker_reader = reader
        core.requests.start(transport)
        core.responses.start(reader)
        core.gate.resume(_ROUTING)
        core.data = RelayingData(leg, core)
        frames = core.waiting.take()
        if frames:
            held = core.requests.admit(Cut(None, False, [[frame] for frame in frames]))
            core.responses.deliver_ready()
            if held is not None:
                wait_for_request(leg, held)
                return
        refusal = core.waiting.refusal
        if refusal is not None:
            raise Refused(refusal)

    # Reads reach these through RelayingData, not as inputs; they are the
    # machine's too, so the Relaying state answers every input it is given.
    Relaying.upon(ClientInputs.requests).loop()(relay_requests)
    Relaying.upon(ClientInputs.responses).loop()(relay_responses)

    @Relaying.upon(ClientInputs.request_decided).loop()
    @data_path
    def resume_requests(
        leg: ClientInputs, core: ClientCore, outcome: Outcome, held: HeldRequest
    ) -> None:
        requests = core.requests
        requests.settle(held, outcome)
        try:
            again = requests.release()
        finally:
            core.responses.deliver_ready()
        if again is not None:
            wait_for_request(leg, again)

    @Relaying.upon(ClientInputs.response_decided).loop()
    @data_path
    def release_response(
        leg: ClientInputs, core: ClientCore, outcome: Outcome, held: HeldResponse
    ) -> None:
        core.responses.decided(held, outcome)

    @Relaying.upon(ClientInputs.drain).to(Draining)
    def start_draining(leg: ClientInputs, core: ClientCore) -> None:
        core.data = leg
        core.settings.logs.info("{conn}: draining for shutdown", conn=core.describe())
        core.stop_taking("draining for shutdown")
        core.close_when_answered()

    @Relaying.upon(ClientInputs.refuse).to(Draining)
    def start_refusing(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        core.data = leg
        settings = core.settings
        before = len(core.inflight) + len(core.waiting) + (core.requests.held is not None)
        settings.logs.warn(
            "{conn}: {reason}; closing once the {count} requests before it are answered"
            if before
            else "{conn}: {reason}; closing",
            conn=core.describe(),
            reason=reason,
            count=before,
        )
        if core.requests.held is not None:
            # Requests wait behind one an interceptor holds: they were sent
            # before the refused one, so they go on (and are answered) first.
            core.waiting.refusal = reason
        else:
            core.waiting.clear()
        core.stop_taking(reason)
        core.close_when_answered()
        core.account()

    @Draining.upon(ClientInputs.requests).loop()
    def drop_requests(leg: ClientInputs, core: ClientCore, cut: Cut) -> None:
        # The rest of a request already on its way to the broker still goes
        # (its answer is in flight); anything after it the client sends again
        # on its next connection.
        if cut.tail is not None:
            core.requests.pass_tail(cut.tail)
        if not core.reader.passing:
            core.stop_taking("closing")
        core.account()

    @Draining.upon(ClientInputs.responses).loop()
    @data_path
    def answer_then_maybe_close(leg: ClientInputs, core: ClientCore, cut: Cut) -> None:
        held = core.responses.relay(cut)
        if held:
            wait_for_responses(leg, held)
        core.close_when_answered()

    @Draining.upon(ClientInputs.request_decided).loop()
    @data_path
    def settle_then_maybe_close(
        leg: ClientInputs, core: ClientCore, outcome: Outcome, held: HeldRequest
    ) -> None:
        # The held request still goes (or is answered).  What waited behind it
        # is sent again by the client on its next connection, like any request
        # arriving while the connection drains, unless the connection closes
        # for a refused request: those came before it, and go on first.
        requests = core.requests
        requests.settle(held, outcome)
        again = None
        try:
            if core.waiting.refusal is not None:
                again = requests.release()
            else:
                core.waiting.clear()
        finally:
            core.responses.deliver_ready()
        if again is not None:
            wait_for_request(leg, again)
            return
        core.close_when_answered()

    @Draining.upon(ClientInputs.response_decided).loop()
    @data_path
    def release_then_maybe_close(
        leg: ClientInputs, core: ClientCore, outcome: Outcome, held: HeldResponse
    ) -> None:
        core.responses.decided(held, outcome)
        core.close_when_answered()

    Draining.upon(ClientInputs.drain).loop().returns(None)

    @Draining.upon(ClientInputs.refuse).loop()
    def refused_while_draining(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        # Already taking nothing more: close once what is in flight is answered.
        core.stop_taking(reason)
        core.close_when_answered()

    @AwaitingRoute.upon(ClientInputs.drain).to(Closed)
    def drop_unrouted(leg: ClientInputs, core: ClientCore) -> None:
        core.close_unrouted("gateway shutting down", abort=False)

    @AwaitingRoute.upon(ClientInputs.abort).to(Closed)
    def abort_unrouted(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        core.close_unrouted(reason, abort=True)

    @AwaitingRoute.upon(ClientInputs.idle).to(Closed)
    def idle_unrouted(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        core.settings.guard.closed_idle += 1
        core.close_unrouted(reason, abort=False)

    @AwaitingRoute.upon(ClientInputs.client_lost).to(Closed)
    def client_gone_unrouted(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        core.settings.logs.info(
            "{conn}: client closed the connection ({reason}) before it was routed",
            conn=core.describe(),
            reason=reason,
        )
        core.release()

    @AwaitingBroker.upon(ClientInputs.drain).to(Closed)
    def drop_early(leg: ClientInputs, core: ClientCore) -> None:
        core.close("gateway shutting down", abort=False)

    @AwaitingBroker.upon(ClientInputs.idle).to(Closed)
    @Relaying.upon(ClientInputs.idle).to(Closed)
    @Draining.upon(ClientInputs.idle).to(Closed)
    def close_idle(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        core.settings.guard.closed_idle += 1
        core.close(reason, abort=False)

    @AwaitingBroker.upon(ClientInputs.broker_lost).to(Closed)
    @Relaying.upon(ClientInputs.broker_lost).to(Closed)
    @Draining.upon(ClientInputs.broker_lost).to(Closed)
    def broker_gone(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        core.close(reason, abort=False)

    @AwaitingBroker.upon(ClientInputs.abort).to(Closed)
    @Relaying.upon(ClientInputs.abort).to(Closed)
    @Draining.upon(ClientInputs.abort).to(Closed)
    def protocol_error(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        core.close(reason, abort=True)

    @AwaitingBroker.upon(ClientInputs.client_lost).to(Closed)
    @Relaying.upon(ClientInputs.client_lost).to(Closed)
    @Draining.upon(ClientInputs.client_lost).to(Closed)
    def client_gone(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        core.settings.logs.info(
            "{conn}: client closed the connection ({reason}); {sent} bytes up, {got} bytes down",
            conn=core.describe(),
            reason=reason,
            sent=core.requests.bytes_from_client,
            got=core.responses.bytes_to_client,
        )
        core.finish()
        core.broker.close("client closed")
        core.detach()

    # A closed connection drops whatever still arrives: a late route, frames,
    # an interceptor's decision, a second close.
    Closed.upon(ClientInputs.routed).loop().returns(None)
    Closed.upon(ClientInputs.unroutable).loop().returns(None)
    Closed.upon(ClientInputs.requests).loop().returns(None)
    Closed.upon(ClientInputs.responses).loop().returns(None)
    Closed.upon(ClientInputs.request_decided).loop().returns(None)
    Closed.upon(ClientInputs.response_decided).loop().returns(None)
    Closed.upon(ClientInputs.broker_lost).loop().returns(None)
    Closed.upon(ClientInputs.broker_unreachable).loop().returns(None)
    Closed.upon(ClientInputs.no_broker_reachable).loop().returns(None)

    @Closed.upon(ClientInputs.client_lost).loop()
    def gone(leg: ClientInputs, core: ClientCore, reason: str) -> None:
        # The last input a connection gets: nothing may tie it in a cycle now.
        core.detach()

    Closed.upon(ClientInputs.drain).loop().returns(None)
    Closed.upon(ClientInputs.abort).loop().returns(None)
    Closed.upon(ClientInputs.refuse).loop().returns(None)
    Closed.upon(ClientInputs.idle).loop().returns(None)

    @Closed.upon(ClientInputs.broker_ready).loop()
    def late_broker(
        leg: ClientInputs,
        core: ClientCore,
        broker: BrokerLeg,
        transport: Transport,
        reader: FrameStream,
    ) -> None:
        broker.close("client already gone")

    return machine.build()


def _connect(leg: ClientInputs, core: ClientCore, route: Route) -> None:
    """Open the broker leg of C{route}, and the paths the connection's frames take."""
    settings = core.settings
    core.route = route
    # The leg reports to this machine; a report made while it is being
    # opened (a refused connection) runs once the behaviour is done.
    core.broker = open_broker_leg(
        route.address,
        LegOwner(leg, core),
        settings.connect,
        settings.max_frame_bytes,
        settings.stats,
        settings.now,
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
        core.gate,
        core.reader,
        settings.stats,
        settings.now,
        interceptors,
        sasl,
        settings.logs,
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
        core.pre_auth,
        settings.guard,
        settings.logs,
        core.timer,
    )


# Built last: Automat resolves the input protocol's annotations at build time.
new_client_machine = _build()
