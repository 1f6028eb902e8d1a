"""
The cluster's interceptor configurations, kept in its compacted interceptors
topic (key: the interceptor's name, value: its L{InterceptorSpec} as JSON).

Every node reads the topic and makes its L{InterceptorSet} match it whenever
it changes, so a configuration written through any node's admin API runs on
every node, and a restarted node reads them all again.  Writes validate first
(nothing invalid reaches the topic) and return once this node has read its own
write back, so a GET right after a PUT shows it.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

from kgateway.interceptors.api import InvalidConfig
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interceptors.spec import InterceptorSpec
from kgateway.interfaces import TopicReader, TopicWriter

log = Logger()


class InterceptorNotFound(Exception):
    """No interceptor has that name."""


class IInterceptorAdmin(Interface):
    """What the admin API manages: the cluster's interceptor configurations."""

    def specs() -> list[InterceptorSpec]:
        """Every stored configuration, in the order they see a request."""

    def failed() -> dict[str, str]:
        """Configurations this node could not build, with the reason, by name."""

    def plugins() -> list[tuple[str, str]]:
        """The installed interceptor plugins: (name, description), by name."""

    def get(name: str) -> InterceptorSpec | None:
        """The configuration named C{name}, or None."""

    def put(spec: InterceptorSpec) -> Deferred[bool]:
        """Store C{spec} (fails with L{InvalidConfig}); fires with whether it was new."""

    def delete(name: str) -> Deferred[None]:
        """Remove a configuration (fails with L{InterceptorNotFound})."""


def _order(spec: InterceptorSpec) -> tuple[int, str]:
    return (spec.priority, spec.name)


@implementer(IInterceptorAdmin)
class InterceptorStore(MultiService):
    """
    Applies the interceptors topic to this node's L{InterceptorSet}; writes to it.

    Its reader is its child service: the store reads the topic while it runs.
    """

    def __init__(
        self,
        topic: str,
        reader: TopicReader,
        writer: TopicWriter,
        interceptors: InterceptorSet,
        clock: IReactorTime,
        timeout_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        self.topic = topic
        self.reader = reader
        self.writer = writer
        self.interceptors = interceptors
        self.clock = clock
        self.timeout_seconds = timeout_seconds
        self._specs: dict[str, InterceptorSpec] = {}
        #: Whether the topic has been read once (readiness waits for it).
        self.is_loaded = False
        #: Values that did not decode, so each is logged once.
        self._rejected: set[tuple[bytes, bytes]] = set()
        reader.listener = self.changed
        reader.loaded().addCallback(self._mark_loaded)
        reader.setServiceParent(self)

    def loaded(self) -> Deferred[None]:
        """Fires once the whole topic has been read and applied (the node may then listen)."""
        return self.reader.loaded()

    def _mark_loaded(self, _: None) -> None:
        self.is_loaded = True

    def changed(self, entries: Mapping[bytes, bytes]) -> None:
        """The topic changed: decode every entry and apply the whole set."""
        specs: dict[str, InterceptorSpec] = {}
        for key, value in entries.items():
            name = key.decode(errors="replace")
            try:
                spec = InterceptorSpec.decode(value)
                if spec.name != name:
                    raise InvalidConfig(f"the record's key is {name!r} but it names {spec.name!r}")
            except InvalidConfig as e:
                if (key, value) not in self._rejected:
                    self._rejected.add((key, value))
                    log.error(
                        "Ignoring interceptor {name} in {topic}: {reason}",
                        name=name,
                        topic=self.topic,
                        reason=e,
                    )
                continue
            specs[name] = spec
        self._specs = specs
        self.interceptors.apply(self.specs())

    def specs(self) -> list[InterceptorSpec]:
        """Every stored configuration, in priority order."""
        return sorted(self._specs.values(), key=_order)

    def failed(self) -> dict[str, str]:
        """Configurations this node could not build, by name."""
        return dict(self.interceptors.failed)

    def plugins(self) -> list[tuple[str, str]]:
        """The installed plugins, by name."""
        return [
            (name, str(getattr(plugin, "description", "") or ""))
            for name, plugin in sorted(self.interceptors.plugins.items())
        ]

    def get(self, name: str) -> InterceptorSpec | None:
        """The stored configuration named C{name}."""
        return self._specs.get(name)

    def put(self, spec: InterceptorSpec) -> Deferred[bool]:
        """Validate, write, and wait until this node has read it back; whether it was new."""
        return ensureDeferred(self._put(spec))

    async def _put(self, spec: InterceptorSpec) -> bool:
        # Validate before writing: an invalid configuration never reaches the topic.
        self.interceptors.validate(spec)
        created = spec.name not in self._specs
        await self._write(spec.name, spec.encode())
        return created

    def delete(self, name: str) -> Deferred[None]:
        """Write a tombstone for C{name}; L{InterceptorNotFound} if there is none."""
        return ensureDeferred(self._delete(name))

    async def _delete(self, name: str) -> None:
        if name not in self._specs and name.encode() not in self.reader.entries:
            raise InterceptorNotFound(f"no interceptor named {name!r}")
        await self._write(name, None)

    async def _write(self, name: str, value: bytes | None) -> None:
        offset = await self.writer.produce(self.topic, name.encode(), value)
        # Read it back now rather than at the next poll, so the caller's next
        # GET (on this node) already shows it.
        seen = self.reader.seen(offset)
        seen.addTimeout(self.timeout_seconds, self.clock)
        self.reader.poll()
        await seen
