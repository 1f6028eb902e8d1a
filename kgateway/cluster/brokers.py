"""
The node's own view of the Kafka brokers.

It refreshes metadata on a timer from the configured bootstrap servers,
failing over across all of them and then across the brokers it already
knows, and logs brokers that appear, move or disappear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from kgateway.interfaces import BrokerInfo, IBrokerDirectory
from kgateway.net import Connector, HostPort
from kgateway.protocol.framing import FrameError, FrameReader

log = Logger()

#: Metadata v12 is answered by every Kafka since 2.8, including 4.x.
METADATA_VERSION = 12
CLIENT_ID = "kgateway"


class _MetadataOnce(Protocol):
    """Asks one broker for the broker list (no topics), then hangs up."""

    def __init__(self, done: Deferred[list[BrokerInfo]]) -> None:
        self.done = done
        self.reader = FrameReader()

    def connectionMade(self) -> None:
        request = MetadataRequest[METADATA_VERSION](
            topics=[],
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
        request.with_header(correlation_id=1, client_id=CLIENT_ID)
        self.transport.write(bytes(request.encode(header=True, framed=True)))  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
            responses = [
                MetadataResponse.decode(
                    memoryview(frame)[4:], version=METADATA_VERSION, header=True
                )
                for frame in frames
            ]
        except Exception as e:
            # A bootstrap address that is not a Kafka listener (wrong port,
            # TLS): a reason for the directory's log, not a traceback.
            self.transport.abortConnection()  # type: ignore[union-attr]
            if not self.done.called:
                self.done.errback(FrameError(f"not a Kafka Metadata response: {e}"))
            return
        for response in responses:
            brokers = [BrokerInfo(b.node_id, b.host, b.port, b.rack) for b in response.brokers]
            self.transport.loseConnection()  # type: ignore[union-attr]
            if not self.done.called:
                self.done.callback(brokers)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.done.called:
            self.done.errback(reason)


class _MetadataOnceFactory(Factory):
    noisy = False

    def __init__(self, done: Deferred[list[BrokerInfo]]) -> None:
        self.done = done

    def buildProtocol(self, addr: Any) -> _MetadataOnce:
        return _MetadataOnce(self.done)


async def fetch_brokers(
    connect: Connector, endpoint: HostPort, clock: IReactorTime, timeout: float
) -> list[BrokerInfo]:
    """Ask the broker at C{endpoint} for the broker list."""
    done: Deferred[list[BrokerInfo]] = Deferred()
    attempt = connect(endpoint, _MetadataOnceFactory(done))

    def failed(f: Failure) -> None:
        if not done.called:
            done.errback(f)

    attempt.addErrback(failed)

    def close(protocol: Protocol | None) -> None:
        if protocol is not None and protocol.transport is not None:
            protocol.transport.loseConnection()

    def hang_up(result: object) -> object:
        # On a timeout the broker may have accepted the connection and never
        # answered (a TLS port, a hung broker): close it, or every refresh
        # leaks a socket.
        attempt.cancel()
        attempt.addCallback(close)
        return result

    done.addTimeout(timeout, clock)
    done.addBoth(hang_up)
    return await done


@implementer(IBrokerDirectory)
class BrokerDirectory(Service):
    """Keeps the list of brokers fresh; fires L{ready} after the first success."""

    def __init__(
        self,
        bootstrap: Sequence[HostPort],
        connect: Connector,
        clock: IReactorTime,
        refresh_seconds: float = 5.0,
        timeout_seconds: float = 10.0,
        fetch: Callable[..., Any] = fetch_brokers,
    ) -> None:
        self._bootstrap = list(bootstrap)
        self._connect = connect
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._timeout = timeout_seconds
        self._fetch = fetch
        self._brokers: dict[int, BrokerInfo] = {}
        self._waiting: list[Deferred[None]] = []
        self._loop: LoopingCall | None = None
        self._refreshing = False
        self._reported_unreachable = False
        self.has_brokers = False

    # IBrokerDirectory

    def broker(self, node_id: int) -> BrokerInfo | None:
        """The broker with this id, if known."""
        return self._brokers.get(node_id)

    def brokers(self) -> dict[int, BrokerInfo]:
        """Every known broker by id."""
        return dict(self._brokers)

    def bootstrap_addresses(self) -> list[HostPort]:
        """The configured bootstrap servers."""
        return list(self._bootstrap)

    # Service

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = self._clock
        self._loop.start(self._refresh_seconds, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def ready(self) -> Deferred[None]:
        """Fires once the node has seen the brokers at least once."""
        if self.has_brokers:
            return Deferred.fromCoroutine(_none())
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        return waiter

    def refresh(self) -> Deferred[None]:
        """Fetch the broker list now, trying every candidate in turn."""
        return ensureDeferred(self._refresh())

    async def _refresh(self) -> None:
        if self._refreshing:
            return
        self._refreshing = True
        try:
            errors = []
            for endpoint in self._candidates():
                try:
                    brokers = await self._fetch(self._connect, endpoint, self._clock, self._timeout)
                except Exception as e:
                    errors.append(f"{endpoint}: {e}")
                    continue
                self._update(brokers)
                if self._reported_unreachable:
                    log.info("Kafka is reachable again via {endpoint}", endpoint=endpoint)
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
        seen: list[HostPort] = []
        for endpoint in self._bootstrap + [b.address for b in self._brokers.values()]:
            if endpoint not in seen:
                seen.append(endpoint)
        return seen

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


async def _none() -> None:
    return None
