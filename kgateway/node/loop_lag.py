"""
How late the node's event loop runs: the one number that shows a node that
is starved of CPU (or blocked by a long computation) from the outside.

A node is one event loop.  When it is starved, every client's requests wait
in the kernel's socket buffers, where the node cannot see them: a request
read after a 27 s stall is read, forwarded and answered in well under a
millisecond of the node's own time, so the node's request latencies look
fine while its clients time out.  L{LoopLag} asks the reactor to wake it
every C{interval} seconds and measures how much later than asked it woke;
the lag is a gauge and a maximum in C{/metrics}, and a warning in the log
(at most one per C{interval}) when it passes C{warn_seconds}.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from kgateway.log_limit import LogLimiter

log = Logger()


class LoopLag(Service):
    """Measures the event loop's lag (a Twisted service: it runs while the node runs)."""

    def __init__(
        self,
        clock: IReactorTime,
        interval: float = 0.5,
        warn_seconds: float = 1.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._now = now
        self.interval = interval
        self.warn_seconds = warn_seconds
        self._call: IDelayedCall | None = None
        self._due = 0.0
        #: The lag of the latest wake-up, in seconds.
        self.last = 0.0
        #: The largest lag since the last scrape (L{take_max}), and ever.
        self._max_since = 0.0
        self.max_ever = 0.0
        #: Wake-ups later than C{warn_seconds}.
        self.stalls = 0
        #: Seconds of lag in all.
        self.total = 0.0
        self._logs = LogLimiter(log, burst=1, interval=max(interval, 1.0), now=now)

    def startService(self) -> None:
        """Start measuring."""
        super().startService()
        self._schedule()

    def stopService(self) -> None:
        """Stop measuring."""
        super().stopService()
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _schedule(self) -> None:
        self._due = self._now() + self.interval
        self._call = self._clock.callLater(self.interval, self._woke)

    def _woke(self) -> None:
        lag = max(0.0, self._now() - self._due)
        self.observe(lag)
        self._schedule()

    def observe(self, lag: float) -> None:
        """Count one wake-up C{lag} seconds late."""
        self.last = lag
        self.total += lag
        self._max_since = max(self._max_since, lag)
        self.max_ever = max(self.max_ever, lag)
        if lag >= self.warn_seconds:
            self.stalls += 1
            self._logs.warn(
                "The event loop ran {lag:.1f} s late (the node is short of CPU, or something "
                "blocked it); clients' requests waited that long unread",
                lag=lag,
            )

    def take_max(self) -> float:
        """The largest lag since the last call."""
        found, self._max_since = self._max_since, self.last
        return found


class LoopLagCollector(Collector):
    """The loop's lag as Prometheus families."""

    def __init__(self, lag: LoopLag) -> None:
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        """The lag families."""
        lag = self.lag
        yield GaugeMetricFamily(
            "kgateway_event_loop_lag_seconds",
            "How late the event loop woke up last time (measured every 0.5 s)",
            value=lag.last,
        )
        yield GaugeMetricFamily(
            "kgateway_event_loop_lag_max_seconds",
            "The largest event loop lag since the previous scrape",
            value=lag.take_max(),
        )
        yield CounterMetricFamily(
            "kgateway_event_loop_stalls",
            "Times the event loop woke up a second or more late",
            value=lag.stalls,
        )
