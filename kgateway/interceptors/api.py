"""
What an interceptor is, for the gateway and for plugin authors.

An interceptor plugin (L{IInterceptorPlugin}) is found with
C{twisted.plugin.getPlugins} in the C{kgateway.plugins} package and builds
interceptors (L{IInterceptor}) from a configuration.  An interceptor names
the API keys whose requests and responses it wants; only those are handed
to it, and a message is decoded only when an interceptor reads
C{call.message}.  Everything else stays on the relay's zero-decode path.

A hook returns C{None} to let the message go on (changed or not), a
L{Respond} to answer the client itself, a L{Close} to hang up, or a
C{Deferred} firing with one of those (to delay it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import Attribute, Interface

from kgateway.protocol.codec import decode_request, decode_response, response_class


class InvalidConfig(Exception):
    """A configuration an interceptor cannot run with; the message is one line for its author."""


class _AllApis(Collection[int]):
    """Every API key: for interceptors that want all traffic."""

    def __contains__(self, api_key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "ALL_APIS"


#: Pass as C{requests} or C{responses} to see every API key.
ALL_APIS: Collection[int] = _AllApis()


@dataclass
class ClientInfo:
    """Who is on the other end of a client connection, as far as the gateway knows."""

    #: The client's address, "host:port".
    peer: str
    #: The broker id whose port the client connected to.
    broker_id: int
    #: The client id of its requests (None until one arrived, or if it sent none).
    client_id: str | None = None
    #: The SASL username it authenticated as, where the gateway could read it (PLAIN).
    username: str | None = None
    #: The subject of its TLS client certificate (mTLS), RFC 4514 style: "CN=app-1,O=acme".
    principal: str | None = None
    #: What interceptors keep about this connection, each under its own key; it goes
    #: away with the connection, so nothing needs expiring.
    state: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: Which interceptors' scopes take this connection in, decided once per client id and
    #: username by L{kgateway.interceptors.registry.InterceptorSet} and kept here.
    scope_decision: Any = field(default=None, compare=False, repr=False)

    @property
    def host(self) -> str:
        """The client's host, without its port."""
        return self.peer.rpartition(":")[0]


@dataclass(frozen=True)
class Respond:
    """Answer the client with this response body instead of asking the broker."""

    #: A kafka-python response message (the API's response class, any version object).
    message: Any


@dataclass(frozen=True)
class Close:
    """Close the client connection; C{reason} goes in the gateway's log."""

    reason: str


Outcome = Union[Respond, Close, None]  # noqa: UP007 (a runtime alias)
HookResult = Union[Outcome, "Deferred[Outcome]"]  # noqa: UP007


@dataclass
class RequestCall:
    """One request on its way to the broker, as an interceptor sees it."""

    client: ClientInfo
    api_key: int
    api_version: int
    correlation_id: int
    #: The framed request as it arrived (length prefix included).
    frame: bytes
    _message: Any = None
    #: Set by an interceptor that changed C{message}: the request is re-encoded.
    changed: bool = False

    @property
    def message(self) -> Any:
        """The decoded request (decoded on first use, then shared by the chain)."""
        if self._message is None:
            self._message = decode_request(self.api_key, self.frame, self.api_version)
        return self._message

    @message.setter
    def message(self, value: Any) -> None:
        self._message = value
        self.changed = True

    @property
    def decoded(self) -> bool:
        """Whether some interceptor has read the message."""
        return self._message is not None

    def response_class(self) -> Any:
        """The response class of this request's API at its version, for building answers."""
        return response_class(self.api_key)[self.api_version]


@dataclass
class ResponseCall:
    """One response on its way back to the client, as an interceptor sees it."""

    client: ClientInfo
    api_key: int
    api_version: int
    correlation_id: int
    #: The framed response the client would get (addresses already rewritten).
    frame: bytes
    _message: Any = None
    changed: bool = False

    @property
    def message(self) -> Any:
        """The decoded response (decoded on first use)."""
        if self._message is None:
            self._message = decode_response(
                response_class(self.api_key), self.frame, self.api_version
            )
        return self._message

    @message.setter
    def message(self, value: Any) -> None:
        self._message = value
        self.changed = True


@dataclass(frozen=True)
class AuditEvent:
    """A decision an interceptor took, for the audit log."""

    interceptor: str
    plugin: str
    client: ClientInfo
    api_key: int
    #: "allowed", "denied", "changed", "throttled", "delayed", "failed" ...
    decision: str
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class InterceptorContext:
    """What the node gives every interceptor it builds."""

    #: The reactor's clock: delays are C{deferLater(context.clock, ...)}.
    clock: IReactorTime
    #: This instance's configured name.
    name: str
    #: The node's GATEWAY_CLUSTER_ID.
    cluster_id: str = "kgateway"
    #: Report a policy decision to the audit log (a no-op without one configured).
    audit: Callable[[AuditEvent], None] = lambda event: None
    #: Append a record to a Kafka topic (key, value); fires once the broker acknowledged it.
    produce: Callable[[str, bytes | None, bytes], Deferred[None]] | None = None
    #: Random numbers for interceptors that need chance (a seam for tests).
    random: Callable[[], float] = random.random
    #: Which gateway node this is ("host:first port"), for records that say where they came from.
    node: str = ""


class IInterceptor(Interface):
    """One configured interceptor, shared by every connection in its scope."""

    requests = Attribute(
        "The API keys whose requests it wants (a collection, or ALL_APIS); read once per "
        "configuration change, so it must not change while the interceptor runs."
    )
    responses = Attribute(
        "The API keys whose responses it wants (a collection, or ALL_APIS); read like requests."
    )

    def on_request(call: RequestCall) -> HookResult:
        """A request in its scope is about to go to the broker."""

    def on_response(call: ResponseCall) -> HookResult:
        """A response in its scope is about to go to the client (L{Respond} replaces it)."""

    def stop() -> None:
        """Its configuration was removed or replaced: cancel timers, drop state."""


class IAuditSink(Interface):
    """An interceptor that records the other interceptors' decisions (the audit log)."""

    def record(event: AuditEvent) -> None:
        """Record one decision; must not block or raise."""


class IInterceptorPlugin(Interface):
    """A kind of interceptor, found as a Twisted plugin in C{kgateway.plugins}."""

    name = Attribute("The name configurations use to pick it, e.g. 'produce-policy'.")
    description = Attribute("One line saying what it does.")

    def build(config: Mapping[str, Any], context: InterceptorContext) -> IInterceptor:
        """
        An interceptor for C{config}.

        Raises L{InvalidConfig} with a one-line reason when C{config} is
        wrong; the admin API answers 400 with it and stores nothing.
        """
