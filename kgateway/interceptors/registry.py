"""
Which interceptor plugins are installed, and which interceptors run now.

Plugins are found with C{twisted.plugin.getPlugins} in the C{kgateway.plugins}
package, so a separately installed distribution that ships a module in
C{kgateway/plugins/} adds its own.  L{InterceptorSet} holds the built
interceptors of the current configuration, in priority order, and answers the
data path's one question: which of them want this message from this client.

A scope is judged once per connection (and again when its client id or
username changes, or the configuration does), not per request: the answer
is kept on the connection's L{ClientInfo}, so a scope pattern costs a
connection one match, whatever it sends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger
from twisted.plugin import getPlugins

from kgateway.interceptors.api import (
    AuditEvent,
    ClientInfo,
    IAuditSink,
    IInterceptor,
    IInterceptorPlugin,
    InterceptorContext,
    InvalidConfig,
)
from kgateway.interceptors.spec import InterceptorSpec

log = Logger()


def discover_plugins() -> dict[str, IInterceptorPlugin]:
    """Every interceptor plugin installed, by name (the first of a duplicated name wins)."""
    import kgateway.plugins

    found: dict[str, IInterceptorPlugin] = {}
    for plugin in getPlugins(IInterceptorPlugin, kgateway.plugins):
        name = getattr(plugin, "name", None)
        if not isinstance(name, str) or not name:
            log.warn("Ignoring an interceptor plugin with no name: {plugin!r}", plugin=plugin)
            continue
        if name in found:
            log.warn(
                "Two interceptor plugins are named {name}; using {kept!r}, ignoring {other!r}",
                name=name,
                kept=found[name],
                other=plugin,
            )
            continue
        found[name] = plugin
    return found


@dataclass(frozen=True)
class ActiveInterceptor:
    """A configuration and the interceptor built from it."""

    spec: InterceptorSpec
    interceptor: IInterceptor

    @property
    def name(self) -> str:
        return self.spec.name


#: How many API keys' chains a connection keeps (the data path only asks about offered
#: keys, a few dozen; the bound is there so that no request can grow the table).
MAX_CACHED_KEYS = 128


@dataclass
class ScopeDecision:
    """Which running interceptors a connection is in scope of, and its chains by API key."""

    generation: int
    client_id: str | None
    username: str | None
    #: Names of the running interceptors whose scope takes the connection in.
    in_scope: frozenset[str]
    requests: dict[int, tuple[ActiveInterceptor, ...]] = field(default_factory=dict)
    responses: dict[int, tuple[ActiveInterceptor, ...]] = field(default_factory=dict)


class InterceptorSet:
    """The interceptors of the current configuration, built and ordered by priority."""

    def __init__(
        self,
        plugins: Mapping[str, IInterceptorPlugin],
        context: Callable[[str], InterceptorContext],
    ) -> None:
        self.plugins = dict(plugins)
        self._context = context
        self._active: dict[str, ActiveInterceptor] = {}
        self._ordered: tuple[ActiveInterceptor, ...] = ()
        # Which running interceptors want each API key, worked out on first use
        # after a change: the data path asks for every frame.
        self._requests: dict[int, tuple[ActiveInterceptor, ...]] = {}
        self._responses: dict[int, tuple[ActiveInterceptor, ...]] = {}
        #: Configurations this node could not build (a plugin it does not have), by name.
        self.failed: dict[str, str] = {}
        #: Decisions reported through L{audit}, by (interceptor, plugin, decision), for /metrics.
        self.decisions: Counter[tuple[str, str, str]] = Counter()
        # Bumped at every change: the connections' scope decisions are then stale.
        self._generation = 0

    def __len__(self) -> int:
        return len(self._ordered)

    @property
    def active(self) -> tuple[ActiveInterceptor, ...]:
        """Every running interceptor, in the order they see a request."""
        return self._ordered

    def build(self, spec: InterceptorSpec) -> IInterceptor:
        """Build C{spec}'s interceptor; L{InvalidConfig} with a one-line reason if it cannot run."""
        plugin = self.plugins.get(spec.plugin)
        if plugin is None:
            known = ", ".join(sorted(self.plugins)) or "none"
            raise InvalidConfig(f"no interceptor plugin named {spec.plugin!r} (installed: {known})")
        try:
            interceptor = plugin.build(spec.config, self._context(spec.name))
        except InvalidConfig:
            raise
        except Exception as e:
            raise InvalidConfig(f"plugin {spec.plugin!r} rejected its config: {e}") from e
        if not IInterceptor.providedBy(interceptor):
            raise InvalidConfig(
                f"plugin {spec.plugin!r} built something that is not an IInterceptor"
            )
        return interceptor

    def validate(self, spec: InterceptorSpec) -> None:
        """Raise L{InvalidConfig} unless C{spec} builds; builds nothing that stays."""
        self.build(spec).stop()

    def apply(self, specs: Iterable[InterceptorSpec]) -> None:
        """Make the running set match C{specs}: build the new and changed, stop the removed."""
        wanted = {spec.name: spec for spec in specs}
        for name in list(self._active):
            if name not in wanted:
                self._stop(self._active.pop(name))
                log.info("Interceptor {name} removed", name=name)
        self.failed = {}
        for name, spec in wanted.items():
            current = self._active.get(name)
            if current is not None and current.spec == spec:
                continue
            try:
                interceptor = self.build(spec)
            except InvalidConfig as e:
                self.failed[name] = str(e)
                log.error(
                    "Interceptor {name} cannot run on this node: {reason}", name=name, reason=e
                )
                if current is not None:
                    self._stop(self._active.pop(name))
                continue
            if current is not None:
                self._stop(current)
            self._active[name] = ActiveInterceptor(spec, interceptor)
            log.info(
                "Interceptor {name} ({plugin}, priority {priority}, scope {scope}) {what}",
                name=name,
                plugin=spec.plugin,
                priority=spec.priority,
                scope=spec.scope.to_json(),
                what="updated" if current is not None else "added",
            )
        self._ordered = tuple(
            sorted(self._active.values(), key=lambda a: (a.spec.priority, a.spec.name))
        )
        self._requests.clear()
        self._responses.clear()
        self._generation += 1

    def for_request(self, api_key: int, client: ClientInfo) -> tuple[ActiveInterceptor, ...]:
        """The interceptors that want this request, in order (empty: relay it untouched)."""
        if not self._ordered:
            return ()
        decision = self._decision(client)
        chain = decision.requests.get(api_key)
        if chain is None:
            chain = self._chain(self._requests, "requests", api_key, decision, decision.requests)
        return chain

    def for_response(self, api_key: int, client: ClientInfo) -> tuple[ActiveInterceptor, ...]:
        """The interceptors that want this response, in order."""
        if not self._ordered:
            return ()
        decision = self._decision(client)
        chain = decision.responses.get(api_key)
        if chain is None:
            chain = self._chain(self._responses, "responses", api_key, decision, decision.responses)
        return chain

    def _decision(self, client: ClientInfo) -> ScopeDecision:
        """The connection's scope decision, judged again only when something it rests on changed."""
        decision: ScopeDecision | None = client.scope_decision
        if (
            decision is None
            or decision.generation != self._generation
            or decision.client_id != client.client_id
            or decision.username != client.username
        ):
            decision = client.scope_decision = ScopeDecision(
                self._generation,
                client.client_id,
                client.username,
                frozenset(a.name for a in self._ordered if a.spec.scope.applies_to(client)),
            )
        return decision

    def _chain(
        self,
        wanting_by_key: dict[int, tuple[ActiveInterceptor, ...]],
        hook: str,
        api_key: int,
        decision: ScopeDecision,
        chains: dict[int, tuple[ActiveInterceptor, ...]],
    ) -> tuple[ActiveInterceptor, ...]:
        # hook: "requests" or "responses", the interceptor attribute naming the keys it wants.
        wanting = wanting_by_key.get(api_key)
        if wanting is None:
            wanting = tuple(a for a in self._ordered if api_key in getattr(a.interceptor, hook))
            if len(wanting_by_key) < MAX_CACHED_KEYS:
                wanting_by_key[api_key] = wanting
        chain = tuple(a for a in wanting if a.name in decision.in_scope)
        if len(chains) < MAX_CACHED_KEYS:
            chains[api_key] = chain
        return chain

    def audit(self, event: AuditEvent) -> None:
        """Count a decision and hand it to every running audit sink."""
        self.decisions[(event.interceptor, event.plugin, event.decision)] += 1
        for active in self._ordered:
            sink: Any = active.interceptor
            if IAuditSink.providedBy(sink):
                try:
                    sink.record(event)
                except Exception:
                    log.failure("Audit sink {name} failed", name=active.name)

    def stop(self) -> None:
        """Stop every interceptor (the node is shutting down)."""
        for active in self._active.values():
            self._stop(active)
        self._active.clear()
        self._ordered = ()
        self._requests.clear()
        self._responses.clear()
        self._generation += 1

    def _stop(self, active: ActiveInterceptor) -> None:
        try:
            active.interceptor.stop()
        except Exception:
            log.failure("Interceptor {name} failed to stop", name=active.name)
