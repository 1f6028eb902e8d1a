"""
The node's own way to Kafka: where to start, how to connect, the clock and
the one timeout.

Every connection the node opens for itself (the broker directory's metadata,
membership, the cluster's topic readers and writers) is opened by
L{KafkaLink.open}, so how the node reaches its brokers (TLS, SASL) is decided
in this one place.  Client traffic does not go through here: the relay opens
its broker connections with the node's L{kgateway.net.Connector}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from kafka.protocol.metadata import ApiVersionsRequest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from kgateway.cluster.kafka_client import KafkaClientProtocol, OneClientFactory
from kgateway.net import Connector, HostPort


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

    def addresses(self) -> list[HostPort]:
        """Where to ask first: the bootstrap servers, then the known brokers, each once."""
        return list(dict.fromkeys([*self.bootstrap, *self.known()]))

    def also_trying(self, known: Callable[[], Iterable[HostPort]]) -> KafkaLink:
        """This link, failing over to C{known} (the directory's brokers) after the bootstrap."""
        return replace(self, known=known)

    def open(self, address: HostPort, learn_versions: bool = True) -> Deferred[KafkaClientProtocol]:
        """
        Connect to the broker at C{address} and (unless told not to) learn the
        versions it offers.  A failure or a cancellation hangs up, including a
        connection that opens only after the attempt was given up.
        """
        return Deferred.fromCoroutine(self._open(address, learn_versions))

    async def _open(self, address: HostPort, learn_versions: bool) -> KafkaClientProtocol:
        factory = OneClientFactory()
        client = factory.client
        try:
            attempt = self.connect(address, factory)
            attempt.addTimeout(self.timeout_seconds, self.clock)
            await attempt
            if learn_versions:
                answer = client.request(
                    ApiVersionsRequest[3](
                        client_software_name="kgateway", client_software_version="0"
                    )
                )
                answer.addTimeout(self.timeout_seconds, self.clock)
                response = await answer
                client.versions = {
                    a.api_key: (a.min_version, a.max_version) for a in response.api_keys
                }
        except BaseException:
            client.abandon()
            raise
        return client
