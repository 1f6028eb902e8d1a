"""
The admin API's JSON vocabulary: every answer is JSON, every error is
C{{"title", "message"}} with its status code, whatever went wrong (an
unknown path, a method not allowed, a crash).  The resources of
L{kgateway.api.resources} and L{kgateway.api.interceptors} are built on it.

A request body is read through L{read_json} only: at most
L{MAX_BODY_BYTES} (413 beyond, and L{BoundedRequest} stops buffering it),
JSON nested at most L{MAX_JSON_DEPTH} deep, and whatever it cannot parse is
a 400 with a reason, never a 500 and a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NoReturn

from twisted.logger import Logger
from twisted.web.error import UnsupportedMethod
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from kgateway.api.auth import REALM

log = Logger()

JSON_TYPE = b"application/json"

#: The largest request body the admin API takes, in bytes (an interceptor is a few KiB).
MAX_BODY_BYTES = 1024 * 1024

#: How deeply a request body's JSON may nest (arrays and objects).
MAX_JSON_DEPTH = 64


class BadBody(Exception):
    """A request body the API cannot use: its status code (400 or 413) and why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BoundedRequest(Request):
    """
    A request that keeps at most L{MAX_BODY_BYTES} of its body: a larger one
    (by its Content-Length, or as chunks arrive) is dropped as it comes and
    answered 413 by L{read_json}, instead of being buffered whole.
    """

    body_too_large = False
    _body_seen = 0

    def gotLength(self, length: int | None) -> None:
        """The Content-Length: past the limit, nothing of the body is kept."""
        if length is not None and length > MAX_BODY_BYTES:
            self.body_too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        """Keep a chunk while the body is within the limit."""
        self._body_seen += len(data)
        if self._body_seen > MAX_BODY_BYTES:
            self.body_too_large = True
        if not self.body_too_large:
            super().handleContentChunk(data)


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _too_deep(value: Any) -> bool:
    # Iterative, so that the check itself cannot run out of stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def read_json(request: IRequest) -> Any:
    """The request body as JSON, or L{BadBody} saying why it cannot be (400 or 413)."""
    too_large = BadBody(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if getattr(request, "body_too_large", False):
        raise too_large
    content = request.content
    data = content.read(MAX_BODY_BYTES + 1) if content is not None else b""
    if len(data) > MAX_BODY_BYTES:
        raise too_large
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadBody(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError included
        raise BadBody(400, f"the body is not JSON: {e}") from None
    if _too_deep(value):
        raise BadBody(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_body(request: IRequest, data: Any, code: int = 200) -> bytes:
    """Answer with C{data} as JSON."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", JSON_TYPE)
    request.setHeader(b"cache-control", b"no-store")
    # Compact, so that json's C encoder does it (indent= takes the pure-Python one,
    # 3.5 times slower: 150 ms for a listing of 10,000 connections).
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


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
