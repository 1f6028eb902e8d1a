"""
The node's own view of the Kafka brokers.

It refreshes metadata on a timer from the configured bootstrap servers,
failing over across all of them and then across the brokers it already
knows, and logs brokers that appear, move or disappear.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kafka.protocol.metadata import MetadataRequest
from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from kgateway.cluster.kafka_client import KafkaRequestError
from kgateway.cluster.link import KafkaLink
from kgateway.cluster.polling import PollService
from kgateway.interfaces import BrokerInfo, IBrokerDirectory
from kgateway.net import HostPort

log = Logger()

#: Metadata v12 is answered by every Kafka since 2.8, including 4.x, so the
#: directory asks it straight away instead of asking ApiVersions first.
METADATA_VERSION = 12

#: Asks one broker for the broker list: C{fetch_brokers} or a test's fake.
Fetch = Callable[[KafkaLink, HostPort], Awaitable[list[BrokerInfo]]]


def fetch_brokers(link: KafkaLink, address: HostPort) -> Deferred[list[BrokerInfo]]:
    """Ask the broker at C{address} for the broker list, within the link's timeout."""
    asking = Deferred.fromCoroutine(_fetch_brokers(link, address))
    # One timeout for the whole exchange, connecting included, as before the
    # directory had a Kafka client: a broker that accepts and never answers
    # (a TLS port, a hung broker) is given up on, and its connection closed.
    asking.addTimeout(link.timeout_seconds, link.clock)
    return asking


async def _fetch_brokers(link: KafkaLink, address: HostPort) -> list[BrokerInfo]:
    client = await link.open(address, learn_versions=False)
    try:
        answer = client.request(
            MetadataRequest[METADATA_VERSION](
                topics=[],
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            )
        )
        try:
            response = await answer
        except KafkaRequestError as e:
            # A bootstrap address that is not a Kafka listener (wrong port,
            # TLS): a reason for the directory's log, not a traceback.
            raise KafkaRequestError(f"not a Kafka Metadata response: {e}") from None
    finally:
        client.close()
    return [BrokerInfo(b.node_id, b.host, b.port, b.rack) for b in response.brokers]


@implementer(IBrokerDirectory)
class BrokerDirectory(MultiService):
    """Keeps the list of brokers fresh; fires L{ready} after the first success."""

    def __init__(
        self,
        link: KafkaLink,
        refresh_seconds: float = 5.0,
        fetch: Fetch = fetch_brokers,
    ) -> None:
        super().__init__()
        self._link = link
        self._fetch = fetch
        self._brokers: dict[int, BrokerInfo] = {}
        self._waiting: list[Deferred[None]] = []
        self._refreshing = False
        self._reported_unreachable = False
        self.has_brokers = False
        PollService(refresh_seconds, self.refresh, link.clock).setServiceParent(self)

    # IBrokerDirectory

    def broker(self, node_id: int) -> BrokerInfo | None:
        """The broker with this id, if known."""
        return self._brokers.get(node_id)

    def brokers(self) -> dict[int, BrokerInfo]:
        """Every known broker by id."""
        return dict(self._brokers)

    def bootstrap_addresses(self) -> list[HostPort]:
        """The configured bootstrap servers."""
        return list(self._link.bootstrap)

    def known_addresses(self) -> list[HostPort]:
        """Where the known brokers are, in the last answer's order (a link's failover)."""
        return [broker.address for broker in self._brokers.values()]

    def ready(self) -> Deferred[None]:
        """Fires once the node has seen the brokers at least once."""
        if self.has_brokers:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        return waiter

    def refresh(self) -> Deferred[None]:
        """Fetch the broker list now, trying every candidate in turn."""
        return Deferred.fromCoroutine(self._refresh())

    async def _refresh(self) -> None:
        if self._refreshing:
            return
        self._refreshing = True
        try:
            errors = []
            for address in self._candidates():
                try:
                    brokers = await self._fetch(self._link, address)
                except CancelledError:
                    raise
                except Exception as e:
                    errors.append(f"{address}: {e}")
                    continue
                self._update(brokers)
                if self._reported_unreachable:
                    log.info("Kafka is reachable again via {endpoint}", endpoint=address)
                    self._reported_unreachable = False
                return
            if not self._reported_unreachable:
                log.error(
                    "Cannot reach any Kafka broker for metadata ({errors}); still trying",
                    errors="; ".join(errors),
                )
                self._reported_unreachable = True
        finally:
            self._refreshing = False

    def _candidates(self) -> list[HostPort]:
        return list(dict.fromkeys([*self._link.addresses(), *self.known_addresses()]))

    def _update(self, brokers: list[BrokerInfo]) -> None:
        fresh = {b.node_id: b for b in brokers}
        for node_id, broker in sorted(fresh.items()):
            old = self._brokers.get(node_id)
            if old is None:
                log.info(
                    "Broker {id} appeared at {host}:{port} (rack {rack})",
                    id=node_id,
                    host=broker.host,
                    port=broker.port,
                    rack=broker.rack,
                )
            elif old != broker:
                log.info(
                    "Broker {id} changed from {old} to {host}:{port} (rack {rack})",
                    id=node_id,
                    old=f"{old.host}:{old.port}",
                    host=broker.host,
                    port=broker.port,
                    rack=broker.rack,
                )
        for node_id in sorted(set(self._brokers) - set(fresh)):
            log.warn("Broker {id} disappeared from the cluster metadata", id=node_id)
        self._brokers = fresh
        if fresh and not self.has_brokers:
            self.has_brokers = True
            waiting, self._waiting = self._waiting, []
            for waiter in waiting:
                waiter.callback(None)
