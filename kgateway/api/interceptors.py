"""
The admin API's interceptor resources: C{/api/v1/interceptors[/NAME]} and
C{/api/v1/plugins}.

Reads follow the API's usual rule (any configured user); writes need a user
with C{admin: true}.  A write answers once this node has read it back from the
interceptors topic, so a GET right after it shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, TimeoutError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET

from kgateway.api.auth import IAdminAuth
from kgateway.api.web import BadBody, JsonResource, error_body, json_body, read_json
from kgateway.interceptors.api import InvalidConfig
from kgateway.interceptors.spec import InterceptorSpec
from kgateway.interceptors.store import IInterceptorAdmin, InterceptorNotFound

log = Logger()

#: The store, or None before the node listens (it is started with the ports).
StoreSource = Callable[[], IInterceptorAdmin | None]

_NOT_READY = "the node has not started reading its interceptors topic yet"


def listing(store: IInterceptorAdmin) -> dict[str, Any]:
    """Every configuration in priority order, and those this node could not build."""
    return {
        "interceptors": [spec.to_json() for spec in store.specs()],
        "failed": store.failed(),
    }


class _Guarded(JsonResource):
    def __init__(self, store: StoreSource, guard: IAdminAuth) -> None:
        super().__init__()
        self.store = store
        self.guard = guard

    def _finish(self, request: IRequest, body: bytes) -> None:
        if not getattr(request, "_disconnected", False):
            request.write(body)
            request.finish()


class Interceptors(_Guarded):
    """C{GET /api/v1/interceptors}; C{/api/v1/interceptors/NAME} below it."""

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        """C{/interceptors/} is the list; any other segment names one interceptor."""
        if path == b"":
            return self
        return Interceptor(self.store, self.guard, path.decode(errors="replace"))

    def render_GET(self, request: IRequest) -> bytes:
        store = self.store()
        if store is None:
            return error_body(request, 503, "Not ready", _NOT_READY)
        return json_body(request, listing(store))


class Interceptor(_Guarded):
    """C{GET}, C{PUT} and C{DELETE /api/v1/interceptors/NAME}."""

    isLeaf = True

    def __init__(self, store: StoreSource, guard: IAdminAuth, name: str) -> None:
        super().__init__(store, guard)
        self.name = name

    def render(self, request: IRequest) -> Any:
        """A path below an interceptor's name is not found, whatever the method."""
        if [segment for segment in request.postpath or [] if segment]:
            return error_body(request, 404, "Not found", "no such resource; see /openapi.json")
        return super().render(request)

    def render_GET(self, request: IRequest) -> bytes:
        store = self.store()
        if store is None:
            return error_body(request, 503, "Not ready", _NOT_READY)
        spec = store.get(self.name)
        if spec is None:
            return error_body(request, 404, "Not found", f"no interceptor named {self.name!r}")
        return json_body(request, spec.to_json())

    def _writable(self, request: IRequest) -> tuple[IInterceptorAdmin | None, bytes | None]:
        if not self.guard.allows_writes(request):
            return None, error_body(
                request, 403, "Forbidden", "changing interceptors needs an admin user"
            )
        store = self.store()
        if store is None:
            return None, error_body(request, 503, "Not ready", _NOT_READY)
        return store, None

    def render_PUT(self, request: IRequest) -> Any:
        store, refusal = self._writable(request)
        if store is None:
            return refusal
        try:
            raw = read_json(request)
        except BadBody as e:
            title = "Invalid interceptor" if e.code == 400 else "Body too large"
            return error_body(request, e.code, title, e.message)
        try:
            spec = InterceptorSpec.parse(raw, self.name)
        except InvalidConfig as e:
            return error_body(request, 400, "Invalid interceptor", str(e))
        stored = store.put(spec)
        stored.addCallbacks(
            lambda created: self._finish(
                request, json_body(request, spec.to_json(), 201 if created else 200)
            ),
            lambda failure: self._finish(request, self._failed(request, failure)),
        )
        return NOT_DONE_YET

    def render_DELETE(self, request: IRequest) -> Any:
        store, refusal = self._writable(request)
        if store is None:
            return refusal
        removed = store.delete(self.name)

        def done(_: object) -> None:
            request.setResponseCode(204)
            self._finish(request, b"")

        removed.addCallbacks(
            done, lambda failure: self._finish(request, self._failed(request, failure))
        )
        return NOT_DONE_YET

    def _failed(self, request: IRequest, failure: Failure) -> bytes:
        if failure.check(InvalidConfig):
            return error_body(request, 400, "Invalid interceptor", failure.getErrorMessage())
        if failure.check(InterceptorNotFound):
            return error_body(request, 404, "Not found", failure.getErrorMessage())
        if failure.check(CancelledError, TimeoutError):
            reason = "no answer in time"
        else:
            reason = failure.getErrorMessage() or failure.type.__name__  # type: ignore[union-attr]
        log.error(
            "Admin API: cannot change interceptor {name}: {reason}", name=self.name, reason=reason
        )
        return error_body(
            request,
            503,
            "Unavailable",
            f"cannot write interceptor {self.name!r} to the interceptors topic: {reason}",
        )


class Plugins(_Guarded):
    """C{GET /api/v1/plugins}: the installed interceptor plugins."""

    def render_GET(self, request: IRequest) -> bytes:
        store = self.store()
        if store is None:
            return error_body(request, 503, "Not ready", _NOT_READY)
        return json_body(
            request,
            {
                "plugins": [
                    {"name": name, "description": description}
                    for name, description in store.plugins()
                ]
            },
        )
