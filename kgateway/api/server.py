"""
Where the admin API listens: an endpoint string (C{tcp:} or, with a key and
certificate, C{ssl:}) built from the settings, served by a twisted.web Site
through Twisted's C{StreamServerEndpointService}.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site
from zope.interface import implementer

from kgateway.api.auth import BasicAuth, IAdminAuth, OpenOnLoopback
from kgateway.api.interceptors import StoreSource
from kgateway.api.resources import admin_root
from kgateway.api.status import INodeStatus
from kgateway.api.web import BoundedRequest
from kgateway.config import Settings
from kgateway.interfaces import INodeReactor

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


@implementer(IStreamServerEndpoint)
class _Announced:
    """An endpoint that tells the service whether it got its port."""

    def __init__(self, endpoint: IStreamServerEndpoint, service: AdminApiService) -> None:
        self._endpoint = endpoint
        self._service = service

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        listening = self._endpoint.listen(factory)
        listening.addCallbacks(self._service.listened, self._service.cannot_listen)
        return listening


class AdminApiService(StreamServerEndpointService):
    """Serves the admin API while running; a port it cannot get stops the node."""

    def __init__(
        self,
        settings: Settings,
        status: INodeStatus,
        registry: CollectorRegistry,
        reactor: INodeReactor,
        interceptors: StoreSource = lambda: None,
        watch: Callable[[IListeningPort], None] = lambda port: None,
    ) -> None:
        """
        C{watch}: given the API's port once it listens (the node's watch at the
        descriptor limit, L{kgateway.node.accepting.watch_admin_port}).
        """
        self.settings = settings
        self._watch = watch
        self.reactor = reactor
        self.site = Site(
            admin_root(
                status, registry, guard_for(settings), settings.secured_metrics, interceptors
            )
        )
        # Bodies past the limit are dropped as they arrive, not buffered.
        self.site.requestFactory = BoundedRequest
        self.site.displayTracebacks = False
        self.site.noisy = False
        endpoint = serverFromString(reactor, endpoint_description(settings))
        super().__init__(_Announced(endpoint, self), self.site)
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

    def listened(self, port: IListeningPort) -> IListeningPort:
        """The API has its port: say where, and how it is guarded."""
        self.port = port
        self._watch(port)
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
        return port

    def cannot_listen(self, failure: Failure) -> Failure | None:
        """No port: one line saying which setting to check, then the node stops."""
        if failure.check(CancelledError):
            return failure  # stopped before it listened
        log.critical(
            "Cannot serve the admin API on {url} ({reason}); check GATEWAY_HTTP_PORT and "
            "GATEWAY_HTTP_BIND_HOST, or what else uses the port. Stopping.",
            url=self.url,
            reason=failure.getErrorMessage(),
        )
        self.listening.errback(failure)
        self.listening.addErrback(lambda _: None)
        self.reactor.callLater(0, self.reactor.stop)
        return None

    def stopService(self) -> Deferred[None]:
        self.port = None
        stopped: Deferred[None] = super().stopService()
        return stopped
