"""
An in-memory compacted topic standing in for the interceptors topic: a writer
appends records, and readers (one per node) see them when they poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed

from kgateway.cluster.kafka_client import KafkaRequestError
from kgateway.interfaces import Listener


@dataclass
class FakeTopic:
    """The records of one topic, in offset order; C{produce} appends one."""

    name: str = "_kgateway_test_interceptors"
    records: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    #: When set, writes fail with this reason.
    broken: str | None = None
    #: Every topic C{produce} was asked to write to.
    writes: list[str] = field(default_factory=list)

    def produce(self, topic: str, key: bytes | None, value: bytes | None) -> Deferred[int]:
        """Append a record; fires with its offset."""
        self.writes.append(topic)
        if self.broken is not None:
            return fail(KafkaRequestError(self.broken))
        self.records.append((key, value))
        return succeed(len(self.records) - 1)

    def reader(self) -> FakeReader:
        """A reader of this topic that reads only when polled."""
        return FakeReader(self)


@dataclass(eq=False)
class FakeReader(Service):
    """Reads the fake topic on C{poll}, as a L{CompactedTopicReader} does."""

    topic: FakeTopic
    entries: dict[bytes, bytes] = field(default_factory=dict)
    listener: Listener | None = None
    offset: int = 0
    running: bool = False
    #: While True, polls read nothing (a node that is slow to catch up).
    paused: bool = False
    _waiting: list[tuple[int, Deferred[None]]] = field(default_factory=list)
    polls: int = 0
    _loaded_waiters: list[Deferred[None]] = field(default_factory=list)

    def startService(self) -> None:
        self.running = True
        self.poll()

    def stopService(self) -> None:
        self.running = False

    def loaded(self) -> Deferred[None]:
        """Fires after the first poll that read (as the real reader's does)."""
        waiter: Deferred[None] = Deferred()
        if self.polls:
            waiter.callback(None)
        else:
            self._loaded_waiters.append(waiter)
        return waiter

    def seen(self, offset: int) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        self._waiting.append((offset, done))
        self._wake()
        return done

    def poll(self) -> Deferred[None]:
        if self.paused:
            return succeed(None)
        changed = False
        for key, value in self.topic.records[self.offset :]:
            self.offset += 1
            if key is None:
                continue
            if value is None:
                changed |= self.entries.pop(key, None) is not None
            elif self.entries.get(key) != value:
                self.entries[key] = value
                changed = True
        if changed and self.listener is not None:
            self.listener(dict(self.entries))
        self.polls += 1
        waiters, self._loaded_waiters = self._loaded_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._wake()
        return succeed(None)

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        for offset, done in waiting:
            if self.offset > offset:
                done.callback(None)
            else:
                self._waiting.append((offset, done))
