"""
The admin API's JSON vocabulary: every answer is JSON, every error is
C{{"title", "message"}} with its status code, whatever went wrong (an
unknown path, a method not allowed, a crash).  The resources of
L{kgateway.api.resources} and L{kgateway.api.interceptors} are built on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from twisted.logger import Logger
from twisted.web.error import UnsupportedMethod
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from kgateway.api.auth import REALM

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
