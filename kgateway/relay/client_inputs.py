"""
The inputs of a client connection's machine: every event of the connection.

Kept apart from the machine (L{kgateway.relay.client_machine}) so that the
data path (L{kgateway.relay.data_path}), which posts inputs of its own, and
the machine can both name them.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from kgateway.interceptors.api import Outcome
from kgateway.protocol.framing import Cut, FrameStream
from kgateway.relay.broker_leg import BrokerLeg
from kgateway.relay.requests import HeldRequest
from kgateway.relay.responses import HeldResponse
from kgateway.relay.transport import Transport
from kgateway.routing.router import Route


class ClientInputs(TypingProtocol):
    """The inputs of a client connection's machine (also its broker leg's owner)."""

    def routed(self, route: Route) -> None:
        """The router decided where the connection goes."""

    def unroutable(self, reason: str) -> None:
        """The router found no broker for the connection."""

    def broker_ready(self, broker: BrokerLeg, transport: Transport, reader: FrameStream) -> None:
        """The broker connection is open on C{transport}; C{reader} cuts its responses."""

    def requests(self, cut: Cut) -> None:
        """A read of the client: a passed frame's next piece, then whole request frames."""

    def responses(self, cut: Cut) -> None:
        """A read of the broker: a passed response's next piece, then whole responses."""

    def request_decided(self, outcome: Outcome, held: HeldRequest) -> None:
        """The interceptors decided on the request they held."""

    def response_decided(self, outcome: Outcome, held: HeldResponse) -> None:
        """The interceptors decided on a broker answer they held."""

    def broker_unreachable(self, reason: str, os_error: int) -> None:
        """No connection to the route's broker could be made: try the next fallback."""

    def no_broker_reachable(self, reason: str) -> None:
        """No connection could be made to the route's broker nor to any fallback: close."""

    def broker_lost(self, reason: str) -> None:
        """The broker connection failed or closed."""

    def client_lost(self, reason: str) -> None:
        """The client's connection closed."""

    def drain(self) -> None:
        """Stop taking requests, deliver the answers in flight, then close."""

    def abort(self, reason: str) -> None:
        """A protocol error: close both sides at once."""

    def refuse(self, reason: str) -> None:
        """A request the gateway refuses: take nothing more, answer the earlier ones, close."""

    def idle(self, reason: str) -> None:
        """Nothing was asked for too long, and nothing is in flight: close."""
