"""
Where a client connection is accepted, at the descriptor limit (issue 12).

A node that runs out of file descriptors (C{EMFILE}: its own limit,
C{ulimit -n}; C{ENFILE}: the system's) cannot accept a client.  Twisted's
TCP port then closes the waiting clients at once (it keeps one descriptor
in reserve for that, so they learn at once instead of waiting for a
timeout) and logs a line per client at info level, while the node looks
healthy.  Here instead:

- L{WatchedPort}, the TCP port every Kafka port listens with, tells a
  L{Saturation} when an accept failed for want of descriptors, and how
  many clients were closed unserved, and keeps Twisted's per-client lines
  out of the log;
- L{Saturation} logs one warning when it begins, and at most one per
  interval however often it ends and begins again (with the count), reports the node as saturated
  (C{/health/ready} answers 503 with the reason), and checks every second
  whether the node has descriptors to spare again (it can open
  L{DESCRIPTOR_HEADROOM} more), when it says so once and is ready again;
- L{watch_admin_port} does the same for the admin API's port (Twisted's,
  from its endpoint): a probe refused at the limit is no line of its own.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IProtocolFactory, IReactorTime
from twisted.internet.posixbase import PosixReactorBase
from twisted.logger import ILogObserver, Logger, globalLogPublisher
from zope.interface import provider

from kgateway.interfaces import INodeReactor

log = Logger()

#: The accept errors that mean "no descriptor left".
OUT_OF_DESCRIPTORS = {errno.EMFILE: "EMFILE", errno.ENFILE: "ENFILE"}
#: Descriptors the node must be able to open before it says it can accept again.
DESCRIPTOR_HEADROOM = 16
#: How often a saturated node checks for free descriptors.
CHECK_SECONDS = 1.0
#: At most one warning per this many seconds while saturated.
WARN_INTERVAL_SECONDS = 10.0


def descriptors_free(count: int) -> bool:
    """Whether this process can open C{count} more descriptors now (it closes them again)."""
    opened: list[int] = []
    try:
        for _ in range(count):
            opened.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        return False
    finally:
        for fd in opened:
            os.close(fd)
    return True


def open_files_limit() -> str:
    """The process's open-files limit (soft), for messages."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


class Saturation:
    """
    Whether the node's Kafka ports can accept clients: saturated from an
    accept that failed for want of descriptors until a check finds
    C{headroom} descriptors free.
    """

    def __init__(
        self,
        clock: IReactorTime,
        free: Callable[[int], bool] = descriptors_free,
        headroom: int = DESCRIPTOR_HEADROOM,
        check_seconds: float = CHECK_SECONDS,
        warn_interval: float = WARN_INTERVAL_SECONDS,
    ) -> None:
        self._clock = clock
        self._free = free
        self._headroom = headroom
        self._check_seconds = check_seconds
        self._warn_interval = warn_interval
        #: When the node became saturated (the clock's seconds), or None while it is not.
        self.since: float | None = None
        #: The error that began it: EMFILE or ENFILE.
        self.error = ""
        #: Clients closed unserved while saturated (this time), and in all.
        self.turned_away = 0
        self.turned_away_total = 0
        #: How many times the node became saturated.
        self.episodes = 0
        self._warned_at: float | None = None
        self._check: IDelayedCall | None = None

    def out_of_descriptors(self, code: int, what: str) -> None:
        """C{what} ("accepting a client on port 6970") failed with C{code} (EMFILE, ENFILE)."""
        now = self._clock.seconds()
        if self.since is None:
            self.since = now
            self.error = OUT_OF_DESCRIPTORS.get(code, errno.errorcode.get(code, str(code)))
            self.turned_away = 0
            self.episodes += 1
            self._check = self._clock.callLater(self._check_seconds, self._recheck)
        # One line per interval, however often it begins and ends in between
        # (a node at its limit goes in and out of it as clients come and go).
        if self._warned_at is not None and now - self._warned_at < self._warn_interval:
            return
        self._warned_at = now
        log.warn(
            "Out of file descriptors ({error}) {what}: new clients "
            "are refused ({count} closed unserved so far) and /health/ready says saturated "
            "until descriptors free up; raise the open-files limit (ulimit -n, now {limit}) "
            "or spread the clients over more nodes",
            error=self.error,
            what=what,
            count=self.turned_away,
            limit=open_files_limit(),
        )

    def broker_connect_failed(self, code: int, what: str) -> None:
        """A client's broker connection could not be made for want of descriptors: it closes."""
        self.out_of_descriptors(code, what)
        self.closed_unserved(1)

    def closed_unserved(self, count: int) -> None:
        """C{count} clients were accepted only to be closed (no descriptor to serve them)."""
        self.turned_away += count
        self.turned_away_total += count

    def problem(self) -> str | None:
        """Why the node cannot accept clients now, or None when it can."""
        if self.since is None:
            return None
        return (
            f"saturated: out of file descriptors ({self.error}) for "
            f"{self._clock.seconds() - self.since:.1f} s, {self.turned_away} clients "
            f"closed unserved (open-files limit {open_files_limit()})"
        )

    def stop(self) -> None:
        """No more checks (the node is stopping)."""
        check, self._check = self._check, None
        if check is not None and check.active():
            check.cancel()

    def _recheck(self) -> None:
        self._check = None
        if self.since is None:
            return
        if not self._free(self._headroom):
            self._check = self._clock.callLater(self._check_seconds, self._recheck)
            return
        log.info(
            "File descriptors free again after {seconds:.1f} s out of them: accepting clients "
            "({count} were closed unserved)",
            seconds=self._clock.seconds() - self.since,
            count=self.turned_away,
        )
        self.since = None


# Twisted's own lines for what Saturation reports: one per refused client.
_TWISTED_EMFILE_LINES = {
    "EMFILE encountered; releasing reserved file descriptor.",
    "EMFILE recovery: Closed socket from {address}",
    "Re-reserving EMFILE recovery file descriptor.",
}


@provider(ILogObserver)
def _without_descriptor_lines(event: dict[str, Any]) -> None:
    """Twisted's port log, less its per-client lines at the descriptor limit."""
    text = event.get("log_format")
    if text in _TWISTED_EMFILE_LINES:
        return
    if (
        text == "Could not accept new connection ({acceptError})"
        and event.get("acceptError") in OUT_OF_DESCRIPTORS.values()
    ):
        return
    globalLogPublisher(event)


class WatchedSocket:
    """A port's listening socket, telling its watcher how each accept went."""

    def __init__(
        self,
        socket: Any,
        short: Callable[[int], None],
        accepted: Callable[[], None] = lambda: None,
    ) -> None:
        #: The socket itself.
        self.inner = socket
        self._short = short
        self._accepted = accepted

    def accept(self) -> Any:
        """The listening socket's accept, watched."""
        try:
            accepted = self.inner.accept()
        except OSError as e:
            if e.errno in OUT_OF_DESCRIPTORS:
                self._short(e.errno)
            raise
        self._accepted()
        return accepted

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


#: Twisted's port logger, less its per-client lines at the descriptor limit.
QUIET_LOGGER = Logger(observer=_without_descriptor_lines)


def watch_admin_port(port: IListeningPort, saturation: Callable[[int, str], None]) -> None:
    """
    The admin API's port, listening: at the descriptor limit it tells
    C{saturation} (L{Saturation.out_of_descriptors}) and logs no line per
    refused request (Twisted closes them at once, as it does Kafka clients).
    A port that is not Twisted's TCP port (a test's) is left as it is.
    """
    if not isinstance(port, tcp.Port):
        return
    number = port.getHost().port
    what = f"accepting an admin API request on port {number}"
    port._logger = QUIET_LOGGER
    port.socket = WatchedSocket(port.socket, lambda code: saturation(code, what))


class WatchedPort(tcp.Port):
    """
    A TCP port that reports to a L{Saturation} when it cannot accept for want
    of descriptors.  Twisted's port does the accepting (and closes the clients
    it cannot serve, with its reserved descriptor); this sees each accept of
    the listening socket, and keeps Twisted's per-client lines out of the log.
    """

    # Twisted's port logs its accept trouble through this logger (its observer
    # receives the lines it buffered during an accept loop).
    _logger = QUIET_LOGGER

    def __init__(
        self,
        port: int,
        factory: IProtocolFactory,
        backlog: int,
        interface: str,
        reactor: Any,
        saturation: Saturation,
    ) -> None:
        super().__init__(port, factory, backlog, interface, reactor)
        self.saturation = saturation
        self._short = False
        self._unserved = 0

    def startListening(self) -> None:
        super().startListening()
        self.socket = WatchedSocket(self.socket, self.out_of_descriptors, self.accepted)

    def doRead(self) -> None:
        self._short = False
        self._unserved = 0
        super().doRead()
        if self._unserved:
            self.saturation.closed_unserved(self._unserved)

    def out_of_descriptors(self, code: int) -> None:
        """An accept failed for want of descriptors: the rest of this read are closed unserved."""
        self._short = True
        self.saturation.out_of_descriptors(
            code, f"accepting a client on port {self.getHost().port}"
        )

    def accepted(self) -> None:
        """An accept succeeded: served, or (after a failed one) closed by Twisted at once."""
        if self._short:
            self._unserved += 1


def kafka_endpoint(host: str, port: int, backlog: int) -> str:
    """The server endpoint string of one Kafka port."""
    return f"tcp:{port}:interface={quoteStringArgument(host)}:backlog={backlog}"


def listen(
    reactor: INodeReactor,
    host: str,
    port: int,
    factory: IProtocolFactory,
    backlog: int,
    saturation: Saturation,
) -> Deferred[IListeningPort]:
    """
    Listen on one Kafka port; fails with C{CannotListenError} if the port is
    taken.  On a POSIX reactor (whose TCP port this watches) with a
    L{WatchedPort}; on any other, as its C{listenTCP} does, unwatched.
    """
    if isinstance(reactor, PosixReactorBase):
        listening = WatchedPort(port, factory, backlog, host, reactor, saturation)
        try:
            listening.startListening()
        except CannotListenError:
            return fail()
        return succeed(listening)
    ported: Deferred[IListeningPort] = serverFromString(
        reactor, kafka_endpoint(host, port, backlog)
    ).listen(factory)
    return ported
