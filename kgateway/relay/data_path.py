"""
What a client connection does with each read while it relays, and the few
helpers every data behaviour of its machine shares.

A read costs no Automat input while relaying (L{RelayingData}); the
behaviours here are also the machine's own transitions, so whether a read
came as an input or straight from the protocol, the same code runs.  The
guard L{_data_path} is the one place a frame's trouble ends: a refusal, a
protocol error, or (when all went well) the budget told what is held now.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Concatenate, ParamSpec

from kgateway.protocol.framing import Cut, FrameError, FrameStream
from kgateway.relay.broker_leg import BrokerLeg
from kgateway.relay.client_core import ClientCore
from kgateway.relay.client_inputs import ClientInputs
from kgateway.relay.requests import HeldRequest, Refused
from kgateway.relay.responses import HeldResponse
from kgateway.relay.transport import Transport

P = ParamSpec("P")


Behaviour = Callable[Concatenate[ClientInputs, ClientCore, P], None]


def data_path(behaviour: Behaviour[P]) -> Behaviour[P]:
    """
    The one place where what happens to a frame ends: a refused request
    closes the connection once the earlier answers are out, a protocol error
    (an unpairable response, an interceptor's Close) closes it at once, and
    otherwise the budget learns what the connection holds now.
    """

    @wraps(behaviour)
    def guarded(leg: ClientInputs, core: ClientCore, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            behaviour(leg, core, *args, **kwargs)
        except Refused as e:
            # Automat runs this input after the current one (it is re-entrant).
            leg.refuse(str(e))
        except FrameError as e:
            leg.abort(str(e))
        core.account()

    return guarded


def wait_for_request(leg: ClientInputs, held: HeldRequest) -> None:
    # The Deferred is taken out of what its callback is given: decision ->
    # callback -> held -> decision would be a cycle.
    decision, held.decision = held.decision, None
    if decision is not None:
        decision.addCallback(leg.request_decided, held)


def wait_for_responses(leg: ClientInputs, held: list[HeldResponse]) -> None:
    for each in held:
        decision, each.decision = each.decision, None
        if decision is not None:
            decision.addCallback(leg.response_decided, each)


@data_path
def relay_requests(leg: ClientInputs, core: ClientCore, cut: Cut) -> None:
    held = core.requests.admit(cut)
    core.responses.deliver_ready()
    if held is not None:
        wait_for_request(leg, held)


@data_path
def relay_responses(leg: ClientInputs, core: ClientCore, cut: Cut) -> None:
    held = core.responses.relay(cut)
    if held:
        wait_for_responses(leg, held)


class LegOwner:
    """
    What the broker leg reports to: its lifecycle as the machine's inputs,
    its responses to wherever the connection's reads go now (L{ClientCore.data}).
    """

    __slots__ = ("_leg", "_core")

    def __init__(self, leg: ClientInputs, core: ClientCore) -> None:
        self._leg = leg
        self._core = core

    def broker_ready(self, broker: BrokerLeg, transport: Transport, reader: FrameStream) -> None:
        """The broker connection is open."""
        self._leg.broker_ready(broker, transport, reader)

    def responses(self, cut: Cut) -> None:
        """A read of the broker."""
        self._core.data.responses(cut)

    def broker_unreachable(self, reason: str, os_error: int) -> None:
        """The broker connection could not be made."""
        self._leg.broker_unreachable(reason, os_error)

    def broker_lost(self, reason: str) -> None:
        """The broker connection is gone."""
        self._leg.broker_lost(reason)


class RelayingData:
    """
    Where a relaying connection's reads go: the data path itself, without an
    Automat input per read.  An input costs a scan of the machine's
    transitions (a set, so the scan's length changes from one process to the
    next), which was the largest single cost of a small request; the broker
    leg leaves frames out of its machine for the same reason.  The Relaying
    state installs it and every transition out of Relaying takes it away
    (L{ClientCore.data} goes back to the machine's inputs), so what a read
    does still depends on the state alone.
    """

    __slots__ = ("_leg", "_core")

    def __init__(self, leg: ClientInputs, core: ClientCore) -> None:
        self._leg = leg
        self._core = core

    def requests(self, cut: Cut) -> None:
        """A read of the client, while relaying."""
        relay_requests(self._leg, self._core, cut)

    def responses(self, cut: Cut) -> None:
        """A read of the broker, while relaying."""
        relay_responses(self._leg, self._core, cut)
