"""
The node's own way to Kafka: where to start, how to connect, the clock and
the one timeout.

Every connection the node opens for itself (the broker directory's metadata,
membership, the cluster's topic readers and writers) is opened by
L{KafkaLink.open}, so how the node reaches its brokers (TLS, SASL) is decided
in this one place: TCP, then the TLS handshake (C{SSL}, C{SASL_SSL}), then
ApiVersions, then the SASL login (C{SASL_*}), then the connection is ready.
A failure at any step is one L{LinkError} line saying what to fix.  Client
traffic does not go through here: the relay opens its broker connections
with the node's L{kgateway.net.Connector} (which wraps the same TLS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from kafka.protocol.metadata import ApiVersionsRequest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from kgateway.cluster.kafka_client import KafkaClientProtocol, KafkaRequestError, OneClientFactory
from kgateway.net import Connector, HostPort
from kgateway.security.client_tls import BrokerTls, describe_tls_failure, is_tls_failure
from kgateway.security.sasl import SaslLogin, SaslRefused


class LinkError(KafkaRequestError):
    """A connection of the node's own could not be secured or logged in; the message says why."""


def _nothing_known() -> Iterable[HostPort]:
    return ()


@dataclass(frozen=True)
class KafkaLink:
    """The bootstrap servers, the connector, the clock and the timeout, as one value."""

    #: The configured bootstrap servers, tried first.
    bootstrap: tuple[HostPort, ...]
    connect: Connector
    clock: IReactorTime
    #: For connecting and for each request (a group join waits longer, see membership).
    timeout_seconds: float = 10.0
    #: Brokers already known, tried after the bootstrap servers (see L{also_trying}).
    known: Callable[[], Iterable[HostPort]] = _nothing_known
    #: TLS to the brokers (C{connect} wraps it; the link waits for the handshake), or None.
    tls: BrokerTls | None = None
    #: The node's SASL login, or None.
    login: SaslLogin | None = None

    def addresses(self) -> list[HostPort]:
        """Where to ask first: the bootstrap servers, then the known brokers, each once."""
        return list(dict.fromkeys([*self.bootstrap, *self.known()]))

    def also_trying(self, known: Callable[[], Iterable[HostPort]]) -> KafkaLink:
        """This link, failing over to C{known} (the directory's brokers) after the bootstrap."""
        return replace(self, known=known)

    def open(self, address: HostPort, learn_versions: bool = True) -> Deferred[KafkaClientProtocol]:
        """
        Connect to the broker at C{address}, secure it and log in as the
        settings say, and (unless told not to, and neither TLS nor SASL is
        on) learn the versions it offers.  A failure or a cancellation hangs
        up, including a connection that opens only after the attempt was
        given up.
        """
        return Deferred.fromCoroutine(self._open(address, learn_versions))

    async def _open(self, address: HostPort, learn_versions: bool) -> KafkaClientProtocol:
        factory = OneClientFactory()
        client = factory.client
        try:
            attempt = self.connect(address, factory)
            attempt.addTimeout(self.timeout_seconds, self.clock)
            await attempt
            if self.tls is not None:
                await self._timed(client.when_secured())
            # With TLS a broker may refuse the node's certificate only after the
            # handshake (TLS 1.3), and SASL picks its versions: ask ApiVersions
            # here, where a failure is explained, not in the first real request.
            if learn_versions or self.tls is not None or self.login is not None:
                response = await self._timed(
                    client.request(
                        ApiVersionsRequest[3](
                            client_software_name="kgateway", client_software_version="0"
                        )
                    )
                )
                client.versions = {
                    a.api_key: (a.min_version, a.max_version) for a in response.api_keys
                }
            if self.login is not None:
                await self._timed(Deferred.fromCoroutine(self.login.authenticate(client, address)))
        except SaslRefused as e:
            client.abandon()
            raise LinkError(str(e)) from None
        except BaseException:
            client.abandon()
            lost = client.lost
            if self.tls is not None and lost is not None and is_tls_failure(lost):
                raise LinkError(describe_tls_failure(lost, address, self.tls)) from None
            raise
        return client

    def _timed(self, waiting: Deferred[Any]) -> Deferred[Any]:
        waiting.addTimeout(self.timeout_seconds, self.clock)
        return waiting
