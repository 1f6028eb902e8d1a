"""
Where the admin API listens: an endpoint string (C{tcp:} or, with a key and
certificate, C{ssl:}) built from the settings, served by a twisted.web Site.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site

from kgateway.api.auth import BasicAuth, IAdminAuth, OpenOnLoopback
from kgateway.api.resources import admin_root
from kgateway.api.status import INodeStatus
from kgateway.config import Settings
from kgateway.interceptors.store import IInterceptorAdmin

log = Logger()


def endpoint_description(settings: Settings) -> str:
    """The server endpoint string for the admin API."""
    interface = quoteStringArgument(settings.http_bind_host)
    if settings.http_tls is None:
        return f"tcp:{settings.http_port}:interface={interface}"
    return (
        f"ssl:{settings.http_port}:interface={interface}"
        f":privateKey={quoteStringArgument(settings.http_tls.key_path)}"
        f":certKey={quoteStringArgument(settings.http_tls.cert_path)}"
    )


def guard_for(settings: Settings) -> IAdminAuth:
    """Basic auth against the configured users, or open (loopback only, by explicit choice)."""
    if settings.admin_api_users:
        return BasicAuth(settings.admin_api_users)
    assert settings.admin_api_refusal is None
    return OpenOnLoopback()


class AdminApiService(Service):
    """Serves the admin API while running; a port it cannot get stops the node."""

    def __init__(
        self,
        settings: Settings,
        status: INodeStatus,
        registry: CollectorRegistry,
        reactor: Any,
        interceptors: Callable[[], IInterceptorAdmin | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.reactor = reactor
        self.site = Site(
            admin_root(
                status, registry, guard_for(settings), settings.secured_metrics, interceptors
            )
        )
        self.site.displayTracebacks = False
        self.site.noisy = False
        self.port: IListeningPort | None = None
        #: Fires with the listening port, or fails if the API could not listen.
        self.listening: Deferred[IListeningPort] = Deferred()

    @property
    def url(self) -> str:
        """Where the API is served, for the log."""
        scheme = "https" if self.settings.http_tls is not None else "http"
        host = self.settings.http_bind_host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.settings.http_port}/"

    def startService(self) -> None:
        super().startService()
        endpoint = serverFromString(self.reactor, endpoint_description(self.settings))
        endpoint.listen(self.site).addCallbacks(self._listening, self._cannot_listen)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        security = (
            "HTTP Basic"
            if self.settings.admin_api_users
            else "NO authentication (GATEWAY_ADMIN_API_OPEN_ON_LOOPBACK)"
        )
        log.info(
            "Admin API on {url} ({security}; /metrics {metrics})",
            url=self.url,
            security=security,
            metrics="secured"
            if self.settings.secured_metrics and self.settings.admin_api_users
            else "open",
        )
        self.listening.callback(port)

    def _cannot_listen(self, failure: Failure) -> None:
        log.critical(
            "Cannot serve the admin API on {url} ({reason}); check GATEWAY_HTTP_PORT and "
            "GATEWAY_HTTP_BIND_HOST, or what else uses the port. Stopping.",
            url=self.url,
            reason=failure.getErrorMessage(),
        )
        self.listening.errback(failure)
        self.listening.addErrback(lambda _: None)
        self.reactor.callLater(0, self.reactor.stop)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
