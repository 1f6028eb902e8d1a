"""
The admin API's resource tree over one node.

Every answer is JSON (C{/metrics} excepted: Prometheus text), every error is
C{{"title", "message"}} with its status code (see L{kgateway.api.web}), and
C{/health/*} is the only part that needs no credentials (C{/metrics} too,
when C{GATEWAY_SECURED_METRICS=false}).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from kgateway.api.auth import IAdminAuth
from kgateway.api.interceptors import Interceptors, Plugins, StoreSource
from kgateway.api.openapi import DOCUMENT
from kgateway.api.status import (
    DEFAULT_CONNECTIONS_LIMIT,
    INodeStatus,
    NotReady,
    UnknownListener,
    UnknownRack,
    versions,
)
from kgateway.api.web import JsonResource, Unauthorized, error_body, json_body


class Live(JsonResource):
    """C{GET /health/live}: 200 while the process runs."""

    def render_GET(self, request: IRequest) -> bytes:
        return json_body(request, {"status": "live"})


class Ready(JsonResource):
    """C{GET /health/ready}: 200 when ready for clients, else 503 with the reasons."""

    def __init__(self, status: INodeStatus) -> None:
        super().__init__()
        self.status = status

    def render_GET(self, request: IRequest) -> bytes:
        reasons = self.status.readiness()
        roster = self.status.roster()
        if reasons:
            return error_body(
                request, 503, "Not ready", "; ".join(reasons), reasons=reasons, roster=roster
            )
        return json_body(request, {"status": "ready", "roster": roster})


class Versions(JsonResource):
    """C{GET /versions}."""

    def render_GET(self, request: IRequest) -> bytes:
        return json_body(request, versions())


class Metrics(JsonResource):
    """C{GET /metrics}: the registry in Prometheus text format."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)


class OpenApi(JsonResource):
    """C{GET /openapi.json}."""

    def render_GET(self, request: IRequest) -> bytes:
        return json_body(request, DOCUMENT)


class JsonView(JsonResource):
    """A C{GET} that answers with what C{view} returns for the request's query."""

    def __init__(self, view: Callable[[IRequest], Any]) -> None:
        super().__init__()
        self.view = view

    def render_GET(self, request: IRequest) -> bytes:
        try:
            return json_body(request, self.view(request))
        except NotReady as e:
            return error_body(request, 503, "Not ready", str(e))
        except UnknownRack as e:
            return error_body(request, 404, "Unknown rack", str(e))
        except UnknownListener as e:
            return error_body(request, 404, "Unknown listener", str(e))
        except BadQuery as e:
            return error_body(request, 400, "Bad request", str(e))


class BadQuery(Exception):
    """A query parameter has a value the API cannot use."""


#: The most connections one listing may ask for.
MAX_CONNECTIONS_LIMIT = 100_000


def _query(request: IRequest, name: str, empty: str) -> str | None:
    values: list[bytes] = (request.args or {}).get(name.encode()) or []
    if not values:
        return None
    value = values[-1].decode(errors="replace").strip()
    if not value:
        raise BadQuery(f"{name} must not be empty; leave it out for {empty}")
    return value


def _rack(request: IRequest) -> str | None:
    return _query(request, "rack", "every rack")


def _listener(request: IRequest) -> str | None:
    return _query(request, "listener", "the node's first listener")


def _limit(request: IRequest) -> int:
    values: list[bytes] = (request.args or {}).get(b"limit") or []
    if not values:
        return DEFAULT_CONNECTIONS_LIMIT
    raw = values[-1].decode(errors="replace").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_CONNECTIONS_LIMIT:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_CONNECTIONS_LIMIT}")
    return int(raw)


class AdminRoot(JsonResource):
    """C{/}: everything below, behind the guard except the open paths."""

    def __init__(self, guard: IAdminAuth, open_paths: frozenset[bytes]) -> None:
        super().__init__()
        self.guard = guard
        self.open_paths = open_paths

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        """Check credentials before looking anything up (so a 404 tells nothing either)."""
        if path not in self.open_paths and not self.guard.allows(request):
            return Unauthorized()
        return super().getChildWithDefault(path, request)  # type: ignore[no-any-return]

    def render_GET(self, request: IRequest) -> bytes:
        return json_body(
            request, {"title": "kgateway admin API", "paths": sorted(DOCUMENT["paths"])}
        )


def _tree(children: Mapping[bytes, Resource]) -> Resource:
    tree = JsonResource()
    for name, child in children.items():
        tree.putChild(name, child)
    return tree


def admin_root(
    status: INodeStatus,
    registry: CollectorRegistry,
    guard: IAdminAuth,
    secured_metrics: bool = True,
    interceptors: StoreSource = lambda: None,
) -> AdminRoot:
    """The whole admin API over one node (C{interceptors}: its interceptor store, once running)."""
    open_paths = {b"health"} | (set() if secured_metrics else {b"metrics"})
    root = AdminRoot(guard, frozenset(open_paths))
    root.putChild(b"health", _tree({b"live": Live(), b"ready": Ready(status)}))
    root.putChild(b"versions", Versions())
    root.putChild(b"metrics", Metrics(registry))
    root.putChild(b"openapi.json", OpenApi())
    views = {
        b"cluster": JsonView(lambda request: status.cluster()),
        b"mapping": JsonView(lambda request: status.mapping(_rack(request), _listener(request))),
        b"connections": JsonView(lambda request: status.connections(_limit(request))),
        b"interceptors": Interceptors(interceptors, guard),
        b"plugins": Plugins(interceptors, guard),
    }
    root.putChild(b"api", _tree({b"v1": _tree(views)}))
    return root
