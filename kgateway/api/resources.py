"""
The admin API's twisted.web resources.

Every answer is JSON (C{/metrics} excepted: Prometheus text), every error is
C{{"title", "message"}} with its status code, and C{/health/*} is the only
part that needs no credentials (C{/metrics} too, when
C{GATEWAY_SECURED_METRICS=false}).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.logger import Logger
from twisted.web.error import UnsupportedMethod
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from kgateway.api.auth import REALM, IAdminAuth
from kgateway.api.openapi import DOCUMENT
from kgateway.api.status import INodeStatus, NotReady, UnknownRack, versions

log = Logger()

JSON_TYPE = b"application/json"


def json_body(request: IRequest, data: Any, code: int = 200) -> bytes:
    """Answer with C{data} as JSON."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", JSON_TYPE)
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(data, indent=1).encode() + b"\n"


def error_body(request: IRequest, code: int, title: str, message: str, **extra: Any) -> bytes:
    """Answer with the API's error shape."""
    return json_body(request, {"title": title, "message": message, **extra}, code)


class JsonResource(Resource):
    """A resource that answers unknown children, methods and failures in JSON."""

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        """C{/x/} is C{/x}; anything else below is not found."""
        if path == b"" and hasattr(self, "render_GET"):
            return self
        return ErrorResource(404, "Not found", "no such resource; see /openapi.json")

    def render(self, request: IRequest) -> bytes:
        """Dispatch to C{render_GET}, answering an unknown method or a crash in JSON."""
        if not hasattr(self, "render_GET"):
            return error_body(request, 404, "Not found", "no such resource; see /openapi.json")
        try:
            return super().render(request)  # type: ignore[no-any-return]
        except UnsupportedMethod as e:
            if request.method == b"HEAD":
                raise  # twisted.web answers HEAD with render_GET, body dropped
            methods: Sequence[bytes | str] = e.allowedMethods or ()
            allowed = sorted(m.decode() if isinstance(m, bytes) else m for m in methods)
            request.setHeader(b"allow", ", ".join(allowed).encode())
            return error_body(request, 405, "Method not allowed", f"use {' or '.join(allowed)}")
        except Exception:
            log.failure("Admin API: {path} failed", path=request.path.decode(errors="replace"))
            return error_body(request, 500, "Internal error", "the node failed; see its log")


class ErrorResource(JsonResource):
    """Any method gets the same JSON error."""

    isLeaf = True

    def __init__(self, code: int, title: str, message: str) -> None:
        super().__init__()
        self.code = code
        self.title = title
        self.message = message

    def render(self, request: IRequest) -> bytes:
        """The error, whatever the method."""
        return error_body(request, self.code, self.title, self.message)


class Unauthorized(ErrorResource):
    """401 with a Basic challenge and no detail about what was wrong."""

    def __init__(self) -> None:
        super().__init__(401, "Unauthorized", "valid admin API credentials are required")

    def render(self, request: IRequest) -> bytes:
        """The challenge."""
        request.setHeader(b"www-authenticate", f'Basic realm="{REALM}"'.encode())
        return super().render(request)


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
        if reasons:
            return error_body(request, 503, "Not ready", "; ".join(reasons), reasons=reasons)
        return json_body(request, {"status": "ready"})


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
        except BadQuery as e:
            return error_body(request, 400, "Bad request", str(e))


class BadQuery(Exception):
    """A query parameter has a value the API cannot use."""


def _rack(request: IRequest) -> str | None:
    values: list[bytes] = (request.args or {}).get(b"rack") or []
    if not values:
        return None
    rack = values[-1].decode(errors="replace").strip()
    if not rack:
        raise BadQuery("rack must not be empty; leave it out for every rack")
    return rack


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
    interceptors: Callable[[], Any] = lambda: None,
) -> AdminRoot:
    """The whole admin API over one node (C{interceptors}: its interceptor store, once running)."""
    # Imported here: the interceptor resources are built on this module's JsonResource.
    from kgateway.api.interceptors import Interceptors, Plugins

    open_paths = {b"health"} | (set() if secured_metrics else {b"metrics"})
    root = AdminRoot(guard, frozenset(open_paths))
    root.putChild(b"health", _tree({b"live": Live(), b"ready": Ready(status)}))
    root.putChild(b"versions", Versions())
    root.putChild(b"metrics", Metrics(registry))
    root.putChild(b"openapi.json", OpenApi())
    views = {
        b"cluster": JsonView(lambda request: status.cluster()),
        b"mapping": JsonView(lambda request: status.mapping(_rack(request))),
        b"connections": JsonView(lambda request: status.connections()),
        b"interceptors": Interceptors(interceptors, guard),
        b"plugins": Plugins(interceptors, guard),
    }
    root.putChild(b"api", _tree({b"v1": _tree(views)}))
    return root
