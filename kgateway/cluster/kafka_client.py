"""
The node's own small Kafka client protocol: one connection, requests with
correlation ids, replies as Deferreds, versions chosen from the broker's
ApiVersions.  L{kgateway.cluster.link.KafkaLink} opens every such connection
(the broker directory's, membership's, the topic readers' and writers').
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IAddress, IHandshakeListener
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from kgateway.protocol.codec import response_class
from kgateway.protocol.framing import FrameReader
from kgateway.protocol.headers import response_correlation_id

#: The client id on every request the node makes for itself.
CLIENT_ID = "kgateway"


class KafkaRequestError(Exception):
    """A broker answered with an error code, or no version both sides know."""

    def __init__(self, message: str, error_code: int = -1) -> None:
        super().__init__(message)
        self.error_code = error_code


#: A request waiting for its answer: (response class, version, the asker's
#: Deferred, or None once the asker gave up and the answer is to be dropped).
_Waiting = tuple[Any, int, "Deferred[Any] | None"]


@implementer(IHandshakeListener)
class KafkaClientProtocol(Protocol):
    """Requests out, responses matched back by correlation id."""

    def __init__(self, client_id: str = CLIENT_ID) -> None:
        #: The client id its requests carry (what a node's connection list shows).
        self.client_id = client_id
        self.reader = FrameReader()
        self.pending: dict[int, _Waiting] = {}
        self.next_correlation = 1
        self.versions: dict[int, tuple[int, int]] = {}
        # Not "connected": Protocol.makeConnection sets that attribute to 1.
        self.opened: Deferred[KafkaClientProtocol] = Deferred()
        self.closed: Deferred[None] = Deferred()
        #: Whether a TLS handshake completed (never, on a plain connection).
        self.secured = False
        self._securing: list[Deferred[None]] = []
        #: Why the connection was lost (a TLS alert, say), once it was.
        self.lost: Failure | None = None
        #: Whoever opened it gave up: hang up, even if the connection opens later.
        self.abandoned = False

    def connectionMade(self) -> None:
        if self.abandoned:
            self.close()
            return
        self.opened.callback(self)

    def handshakeCompleted(self) -> None:
        """TLS is up (Twisted calls this on an L{IHandshakeListener})."""
        self.secured = True
        waiting, self._securing = self._securing, []
        for waiter in waiting:
            waiter.callback(None)

    def when_secured(self) -> Deferred[None]:
        """Fires once TLS is up; fails with the reason if the connection is lost first."""
        if self.secured:
            return succeed(None)
        if self.lost is not None:
            return fail(self.lost)
        waiter: Deferred[None] = Deferred()
        self._securing.append(waiter)
        return waiter

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
        """
        Send a versioned request message; the Deferred fires with the decoded
        response.  Cancelling it (a timeout, a state machine that moved on)
        keeps the connection: the answer, when it comes, is read and dropped.
        """
        correlation = self.next_correlation
        self.next_correlation += 1
        message.with_header(correlation_id=correlation, client_id=self.client_id)
        expected = (response_class(message.API_KEY), message.API_VERSION)

        def give_up(_: Deferred[Any]) -> None:
            if correlation in self.pending:
                self.pending[correlation] = (*expected, None)

        answer: Deferred[Any] = Deferred(give_up)
        self.pending[correlation] = (*expected, answer)
        self.transport.write(bytes(message.encode(header=True, framed=True)))  # type: ignore[union-attr]
        return answer

    def dataReceived(self, data: bytes) -> None:
        try:
            for frame in self.reader.feed(data):
                correlation = response_correlation_id(frame)
                cls, version, answer = self.pending[correlation]
                if answer is None:
                    del self.pending[correlation]
                    continue
                # Still pending while decoding, so a response the codec cannot
                # read fails its own request along with the others.
                response = cls.decode(memoryview(frame)[4:], version=version, header=True)
                del self.pending[correlation]
                answer.callback(response)
        except Exception as e:  # FrameError, an unknown correlation id, or the codec's own errors
            self.transport.abortConnection()  # type: ignore[union-attr]
            self._fail_all(Failure(KafkaRequestError(f"bad response from the broker: {e}")))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = reason
        waiting, self._securing = self._securing, []
        for waiter in waiting:
            waiter.errback(reason)
        self._fail_all(Failure(ConnectionLost(reason.getErrorMessage())))
        if not self.closed.called:
            self.closed.callback(None)

    def _fail_all(self, failure: Failure) -> None:
        pending, self.pending = self.pending, {}
        for _, _, answer in pending.values():
            if answer is not None:
                answer.errback(failure)

    def close(self) -> None:
        """Hang up."""
        if self.transport is not None:
            self.transport.loseConnection()

    def abandon(self) -> None:
        """Hang up now, or as soon as a connection still being made opens."""
        self.abandoned = True
        self.close()


class OneClientFactory(Factory):
    """Builds the one L{KafkaClientProtocol} a connection attempt is for."""

    noisy = False

    def __init__(self, client_id: str = CLIENT_ID) -> None:
        self.client = KafkaClientProtocol(client_id)

    def buildProtocol(self, addr: IAddress | None) -> KafkaClientProtocol:
        return self.client
