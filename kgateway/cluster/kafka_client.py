"""
A small asynchronous Kafka client for the node's own needs (membership,
the license topic): one connection, requests with correlation ids, replies
as Deferreds, versions chosen from the broker's ApiVersions.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.api_header import ResponseClassRegistry
from kafka.protocol.metadata import ApiVersionsRequest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from kgateway.net import Connector, HostPort
from kgateway.protocol.framing import FrameReader
from kgateway.protocol.headers import response_correlation_id

CLIENT_ID = "kgateway"


class KafkaRequestError(Exception):
    """A broker answered with an error code, or no version both sides know."""

    def __init__(self, message: str, error_code: int = -1) -> None:
        super().__init__(message)
        self.error_code = error_code


class KafkaClientProtocol(Protocol):
    """Requests out, responses matched back by correlation id."""

    def __init__(self) -> None:
        self.reader = FrameReader()
        self.pending: dict[int, tuple[Any, int, Deferred[Any]]] = {}
        self.next_correlation = 1
        self.versions: dict[int, tuple[int, int]] = {}
        # Not "connected": Protocol.makeConnection sets that attribute to 1.
        self.opened: Deferred[KafkaClientProtocol] = Deferred()
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.opened.callback(self)

    def version_for(self, api_key: int, highest_known: int, lowest_known: int = 0) -> int:
        """The highest version both the broker and the codec know."""
        broker = self.versions.get(api_key)
        if broker is None:
            raise KafkaRequestError(f"the broker does not offer api key {api_key}")
        version = min(broker[1], highest_known)
        if version < max(broker[0], lowest_known):
            raise KafkaRequestError(f"no version of api key {api_key} in common")
        return version

    def request(self, message: Any) -> Deferred[Any]:
        """Send a versioned request message; the Deferred fires with the decoded response."""
        correlation = self.next_correlation
        self.next_correlation += 1
        message.with_header(correlation_id=correlation, client_id=CLIENT_ID)
        response_class = ResponseClassRegistry._response_class_registry[message.API_KEY]
        answer: Deferred[Any] = Deferred()
        self.pending[correlation] = (response_class, message.API_VERSION, answer)
        self.transport.write(bytes(message.encode(header=True, framed=True)))  # type: ignore[union-attr]
        return answer

    def dataReceived(self, data: bytes) -> None:
        try:
            for frame in self.reader.feed(data):
                correlation = response_correlation_id(frame)
                response_class, version, answer = self.pending[correlation]
                # Still pending while decoding, so a response the codec cannot
                # read fails its own request along with the others.
                response = response_class.decode(
                    memoryview(frame)[4:], version=version, header=True
                )
                del self.pending[correlation]
                answer.callback(response)
        except Exception as e:  # FrameError, an unknown correlation id, or the codec's own errors
            self.transport.abortConnection()  # type: ignore[union-attr]
            self._fail_all(Failure(KafkaRequestError(f"bad response from the broker: {e}")))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._fail_all(Failure(ConnectionLost(reason.getErrorMessage())))
        if not self.closed.called:
            self.closed.callback(None)

    def _fail_all(self, failure: Failure) -> None:
        pending, self.pending = self.pending, {}
        for _, _, answer in pending.values():
            answer.errback(failure)

    def close(self) -> None:
        """Hang up."""
        if self.transport is not None:
            self.transport.loseConnection()


class _Factory(Factory):
    noisy = False

    def __init__(self) -> None:
        self.protocol_instance = KafkaClientProtocol()

    def buildProtocol(self, addr: Any) -> KafkaClientProtocol:
        return self.protocol_instance


async def open_client(
    connect: Connector, endpoint: HostPort, clock: IReactorTime, timeout: float
) -> KafkaClientProtocol:
    """Connect to a broker and learn the versions it offers."""
    factory = _Factory()
    attempt = connect(endpoint, factory)
    attempt.addTimeout(timeout, clock)
    await attempt
    client = factory.protocol_instance
    answer = client.request(
        ApiVersionsRequest[3](client_software_name="kgateway", client_software_version="0")
    )
    answer.addTimeout(timeout, clock)
    try:
        response = await answer
    except BaseException:
        client.close()
        raise
    client.versions = {a.api_key: (a.min_version, a.max_version) for a in response.api_keys}
    return client
