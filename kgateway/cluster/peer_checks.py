"""
Gateway nodes checking each other directly (issue 12 item 4).

The group's session timeout is the time a crashed node keeps being handed
out: ten seconds by default, the whole hang for a stopped one.  So every
node also asks each peer in its roster a cheap Kafka question, ApiVersions
on one of the peer's gateway ports, a few times a second.  A peer whose
checks fail C{misses} times in a row (refused, closed, or no answer within
the timeout) is down for this node: its mappings leave it out at once, and
take it back on its first answer.  The group stays the source of truth for
who is in the cluster; the checks only say which of its members answer now.

One check per peer is outstanding at a time, on one connection kept open
between checks.  A failed check hangs up, and the next one goes to the
peer's next port: a peer port whose broker is down is not the peer down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kafka.protocol.metadata import ApiVersionsRequest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError, ConnectionRefusedError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from kgateway.cluster.kafka_client import KafkaClientProtocol, OneClientFactory
from kgateway.interfaces import Member, PeerHealth
from kgateway.net import Connector, HostPort

log = Logger()

#: The client id of the checks, as the peer's connection list shows them.
CLIENT_ID = "kgateway-peer-check"
#: The default interval between checks of one peer, in seconds.
DEFAULT_INTERVAL_SECONDS = 0.25
#: The default time a check waits for its answer, in seconds.
DEFAULT_TIMEOUT_SECONDS = 0.75
#: The default number of failed checks in a row that make a peer down.
DEFAULT_MISSES = 2


class PeerCheck:
    """The checks of one peer: a loop of ApiVersions round trips on one connection."""

    def __init__(self, checks: PeerChecks, member: Member) -> None:
        self.checks = checks
        self.member = member
        self.up = True
        self.misses = 0
        self.reason = ""
        self.round_trip_ms: float | None = None
        self.changed_at: float | None = None
        self._port_turn = 0
        self._client: KafkaClientProtocol | None = None
        self._running: Deferred[None] | None = None
        #: When the outstanding check's time is up, and whether it was.
        self._deadline: IDelayedCall | None = None
        self._timed_out = False
        self._timer: IDelayedCall | None = None
        self._stopped = False

    @property
    def address(self) -> HostPort:
        """Where the next check goes: the peer's first port, or the next after a miss."""
        member = self.member
        return HostPort(member.host, member.port_start + self._port_turn % member.port_count)

    def start(self) -> None:
        """Check at once, then every interval."""
        self._check()

    def stop(self) -> None:
        """Stop checking and hang up."""
        self._stopped = True
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        running = self._running
        if running is not None:
            self._end(running)
            running.cancel()
        self._hang_up()

    def health(self) -> PeerHealth:
        """The peer as the checks see it now."""
        return PeerHealth(
            self.member.node_name,
            self.address,
            self.up,
            self.misses,
            self.reason,
            self.round_trip_ms,
            self.changed_at,
        )

    def _check(self) -> None:
        self._timer = None
        if self._stopped or self._running is not None:
            return  # one outstanding check per peer
        clock = self.checks.clock
        started = clock.seconds()
        running = Deferred.fromCoroutine(self._round_trip())
        self._running = running
        self._timed_out = False
        self._deadline = clock.callLater(
            self.checks.timeout_seconds,
            self._expire,
            running,
            started + self.checks.timeout_seconds,
        )

        def answered(_: None) -> None:
            self._end(running)
            self._answered((clock.seconds() - started) * 1000)

        def missed(failure: Failure) -> None:
            self._end(running)
            if self._stopped:
                return
            self._missed(self._why(failure))

        running.addCallbacks(answered, missed)
        if not self._stopped:
            # Due an interval after this one started, or once it ends if it is late.
            self._timer = clock.callLater(self.checks.interval_seconds, self._due)

    def _end(self, running: Deferred[None]) -> None:
        if self._running is running:
            self._running = None
            deadline, self._deadline = self._deadline, None
            if deadline is not None and deadline.active():
                deadline.cancel()

    def _expire(self, running: Deferred[None], due: float) -> None:
        """The check's time is up: unless this node's own loop was late, judge it."""
        clock, timeout = self.checks.clock, self.checks.timeout_seconds
        if clock.seconds() - due > timeout / 4:
            # This node's own event loop ran late (short of CPU, or blocked): it cannot
            # tell a silent peer from its own delay, so the peer gets another timeout.
            self._deadline = clock.callLater(
                timeout, self._expire, running, clock.seconds() + timeout
            )
            return
        # Judged on the next turn of the loop, after the reads already waiting: an answer
        # that arrived while this node was busy still counts.
        self._deadline = clock.callLater(0, self._judge, running)

    def _judge(self, running: Deferred[None]) -> None:
        self._deadline = None
        if self._running is running:
            self._timed_out = True
            running.cancel()

    def _due(self) -> None:
        self._timer = None
        if self._running is None:
            self._check()
        else:
            self._running.addBoth(lambda _: self._check_later())

    def _check_later(self) -> None:
        if not self._stopped and self._timer is None:
            self._timer = self.checks.clock.callLater(0, self._check)

    async def _round_trip(self) -> None:
        client = self._client
        if client is None or client.lost is not None:
            factory = OneClientFactory(CLIENT_ID)
            client = factory.client
            self._client = client
            try:
                await self.checks.connect(self.address, factory)
            except BaseException:
                client.abandon()
                raise
        await client.request(ApiVersionsRequest[0]())

    def _why(self, failure: Failure) -> str:
        timeout_ms = round(self.checks.timeout_seconds * 1000)
        if self._timed_out:
            return f"no answer within {timeout_ms} ms"
        if failure.check(ConnectionRefusedError):
            return "connection refused"
        if failure.check(ConnectError):
            return f"cannot connect: {failure.getErrorMessage()}"
        return failure.getErrorMessage() or failure.type.__name__  # type: ignore[union-attr]

    def _answered(self, round_trip_ms: float) -> None:
        self.misses = 0
        self.reason = ""
        self.round_trip_ms = round_trip_ms
        if not self.up:
            self.up = True
            self.changed_at = self.checks.clock.seconds()
            log.info(
                "Gateway peer {peer} at {address} answers again (in {ms} ms); handing it out",
                peer=self.member.node_name,
                address=str(self.address),
                ms=round(round_trip_ms, 1),
            )
            self.checks.changed()

    def _missed(self, reason: str) -> None:
        address = self.address
        self.misses += 1
        self.reason = reason
        # Hang up and try the next port: a port whose broker is down is not the peer.
        self._hang_up()
        self._port_turn += 1
        if self.up and self.misses >= self.checks.misses:
            self.up = False
            self.changed_at = self.checks.clock.seconds()
            log.warn(
                "Gateway peer {peer} at {address} is down: {reason} ({misses} checks in a "
                "row); leaving it out of this node's mappings until it answers",
                peer=self.member.node_name,
                address=str(address),
                reason=reason,
                misses=self.misses,
            )
            self.checks.changed()

    def _hang_up(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.abandon()


class PeerChecks:
    """This node's checks of every peer in its roster, and which of them are down."""

    def __init__(
        self,
        myself: str,
        clock: IReactorTime,
        connect: Connector,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        misses: int = DEFAULT_MISSES,
    ) -> None:
        #: This node's own name: never checked.
        self.myself = myself
        self.clock = clock
        self.connect = connect
        self.interval_seconds = interval_seconds
        self.timeout_seconds = timeout_seconds
        self.misses = misses
        #: Told whenever a peer goes down or comes back.
        self.on_change: Callable[[], None] = lambda: None
        self._peers: dict[str, PeerCheck] = {}
        self._stopped = False

    def watch(self, roster: Iterable[Member]) -> None:
        """Check the peers of C{roster} (a new member at once); stop checking those gone."""
        if self._stopped:
            return
        wanted = {m.node_name: m for m in roster if m.node_name != self.myself}
        for name in list(self._peers):
            check = self._peers[name]
            if name not in wanted or _where(wanted[name]) != _where(check.member):
                del self._peers[name]
                check.stop()
            else:
                check.member = wanted[name]  # a new member id, the same node
        for name, member in wanted.items():
            if name not in self._peers:
                self._peers[name] = check = PeerCheck(self, member)
                check.start()

    def down(self) -> frozenset[str]:
        """The node names of the peers that do not answer."""
        return frozenset(name for name, check in self._peers.items() if not check.up)

    def any_up(self) -> bool:
        """Whether some peer answers (False when there is none)."""
        return any(check.up for check in self._peers.values())

    def health(self) -> list[PeerHealth]:
        """Every checked peer, by node name."""
        return [self._peers[name].health() for name in sorted(self._peers)]

    def changed(self) -> None:
        """A peer went down or came back."""
        self.on_change()

    def stop(self) -> None:
        """Stop every check."""
        self._stopped = True
        peers, self._peers = self._peers, {}
        for check in peers.values():
            check.stop()


def _where(member: Member) -> tuple[str, int, int]:
    return (member.host, member.port_start, member.port_count)
