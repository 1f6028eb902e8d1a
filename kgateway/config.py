"""
The node's settings: environment variables, overridden by twistd options.

Every setting is one L{Setting} row in L{SETTINGS}, in the model of Twisted's
C{usage.Options.optParameters}: its environment variable, twistd option, the
L{Settings} field it fills, the parser that checks it, its default and its
help.  The dataclass defaults, C{twistd kgateway --help} and the README's
table are all made from the rows, so adding a setting is adding a row (and
its typed field).  Settings keyed by a name (C{KAFKA_*} today; listeners,
C{GATEWAY_LISTENER_<NAME>_*}, later) are a L{Family}: a prefix and a reader.

Every setting is read and checked here, once, at start-up.  A bad value
becomes a L{ConfigError} whose message is one line naming the setting, the
value and what would be valid; the plugin turns it into an exit, never a
traceback.  A secret's parser never repeats its value.

C{python -m kgateway.config --markdown} prints the README's settings table.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kgateway import limits
from kgateway.cluster import peer_settings
from kgateway.listener import (
    LISTENER_NAMES,
    LISTENER_PREFIX,
    LISTENERS,
    Listener,
    ListenerDefaults,
    default_listener,
    read_listeners,
)
from kgateway.net import HostPort
from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES
from kgateway.routing import sni_config
from kgateway.security import broker_config
from kgateway.security import server_config as client_tls
from kgateway.security.broker_side import (
    BrokerSecurity,
)
from kgateway.security.server_config import ServerTls, client_login_refusal, server_tls
from kgateway.security.server_tls import ServerContexts
from kgateway.setting import (
    AdminUser,
    ConfigError,
    Family,
    HttpTls,
    Setting,
    boolean,
    host,
    http_tls,
    is_loopback,
    kafka_name,
    log_format,
    milliseconds_as_seconds,
    non_negative_int,
    parse_admin_users,
    parse_servers,
    path,
    port,
    positive_int,
    positive_milliseconds_as_seconds,
    settings_table,
)

__all__ = [
    "SETTINGS",
    "AdminUser",
    "ConfigError",
    "Family",
    "HttpTls",
    "Setting",
    "Settings",
    "kafka_client_settings",
    "settings_table",
]


def kafka_client_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """
    C{KAFKA_CLIENT_ID=X} becomes C{client.id=X}, as Kafka's images do: the
    C{KAFKA_*} variables that are not rows of their own (those are read,
    checked and kept once, by their rows, secrets included).
    """
    rows = {row.env for row in SETTINGS}
    return {
        name[len(KAFKA_CLIENT.prefix) :].lower().replace("_", "."): value
        for name, value in environ.items()
        if name.startswith(KAFKA_CLIENT.prefix) and name not in rows
    }


BOOTSTRAP_SERVERS = Setting(
    "KAFKA_BOOTSTRAP_SERVERS",
    "bootstrap-servers",
    "bootstrap_servers",
    parse_servers,
    None,
    "Kafka brokers to bootstrap from, host:port[,host:port...]",
    required=True,
)
BIND_HOST = Setting(
    "GATEWAY_BIND_HOST",
    "bind-host",
    "bind_host",
    host,
    "0.0.0.0",
    "Address the broker ports listen on",
)
ADVERTISED_HOST = Setting(
    "GATEWAY_ADVERTISED_HOST",
    "advertised-host",
    "advertised_host",
    host,
    None,
    "Host name clients are given for this node",
    unset="this machine's host name",
)
PORT_START = Setting(
    "GATEWAY_PORT_START",
    "port-start",
    "port_start",
    port,
    "6969",
    "First port; port = start + broker id - min broker id",
)
PORT_COUNT = Setting(
    "GATEWAY_PORT_COUNT",
    "port-count",
    "port_count",
    positive_int,
    None,
    "How many ports",
    unset="highest broker id - min broker id + 3",
)
MIN_BROKER_ID = Setting(
    "GATEWAY_MIN_BROKERID",
    "min-broker-id",
    "min_broker_id",
    non_negative_int,
    "0",
    "The broker id that gets the first port",
)
MAX_FRAME_BYTES = Setting(
    "GATEWAY_MAX_FRAME_BYTES",
    "max-frame-bytes",
    "max_frame_bytes",
    positive_int,
    str(DEFAULT_MAX_FRAME_BYTES),
    "Largest Kafka frame accepted from a client or broker, in bytes; a larger one closes "
    "that connection",
)
METADATA_REFRESH = Setting(
    "GATEWAY_METADATA_REFRESH_MS",
    "metadata-refresh-ms",
    "metadata_refresh_seconds",
    positive_milliseconds_as_seconds,
    "5000",
    "How often the node refreshes its view of the brokers",
)
UPSTREAM_CONNECT_TIMEOUT = Setting(
    "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS",
    "upstream-connect-timeout-ms",
    "upstream_connect_timeout_seconds",
    positive_milliseconds_as_seconds,
    "10000",
    "How long to wait for a broker connection",
)
CLUSTER_ID = Setting(
    "GATEWAY_CLUSTER_ID",
    "cluster-id",
    "cluster_id",
    kafka_name,
    "gateway",
    "Nodes with the same cluster id form one gateway cluster",
)
GROUP_ID = Setting(
    "GATEWAY_GROUP_ID",
    "group-id",
    "group_id",
    kafka_name,
    None,
    "Kafka consumer group the nodes join",
    unset="kgateway_<cluster id>",
)
RACK_ID = Setting(
    "GATEWAY_RACK_ID",
    "rack-id",
    "rack_id",
    kafka_name,
    None,
    "This node's rack, matched to the brokers' broker.rack",
)
INTERNAL_LOAD_BALANCING = Setting(
    "GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING",
    "internal-load-balancing",
    "internal_load_balancing",
    boolean,
    "true",
    f"true: spread brokers over the live nodes; false: advertise {ADVERTISED_HOST.env} "
    "(a load balancer) for every broker",
)
GROUP_SESSION_TIMEOUT = Setting(
    "GATEWAY_GROUP_SESSION_TIMEOUT_MS",
    "group-session-timeout-ms",
    "group_session_timeout_ms",
    positive_int,
    "10000",
    "After this long without a heartbeat a crashed node is dropped (Kafka allows 6000+)",
)
GROUP_HEARTBEAT_INTERVAL = Setting(
    "GATEWAY_GROUP_HEARTBEAT_INTERVAL_MS",
    "group-heartbeat-interval-ms",
    "group_heartbeat_interval_ms",
    positive_int,
    "250",
    "How often a node heartbeats, and so how soon it sees others join or leave",
)
SHUTDOWN_DELAY_BETWEEN_BROKERS = Setting(
    "GATEWAY_SHUTDOWN_DELAY_BETWEEN_BROKERS_MS",
    "shutdown-delay-between-brokers-ms",
    "shutdown_delay_between_brokers_seconds",
    milliseconds_as_seconds,
    "0",
    "On shutdown, the pause between closing the connections of one broker and the next",
)
HTTP_PORT = Setting(
    "GATEWAY_HTTP_PORT", "http-port", "http_port", port, "8888", "Port of the HTTP admin API"
)
HTTP_BIND_HOST = Setting(
    "GATEWAY_HTTP_BIND_HOST",
    "http-bind-host",
    "http_bind_host",
    host,
    "0.0.0.0",
    "Address the admin API listens on",
)
# The TLS pair fills one field, http_tls, once both are checked together.
HTTP_TLS_KEY = Setting(
    "GATEWAY_HTTP_TLS_KEY",
    "http-tls-key",
    None,
    path,
    None,
    "PEM private key file: serve the admin API over HTTPS (with GATEWAY_HTTP_TLS_CERT)",
)
HTTP_TLS_CERT = Setting(
    "GATEWAY_HTTP_TLS_CERT",
    "http-tls-cert",
    None,
    path,
    None,
    f"PEM certificate file for the admin API's HTTPS (with {HTTP_TLS_KEY.env})",
)
ADMIN_API_USERS = Setting(
    "GATEWAY_ADMIN_API_USERS",
    "admin-api-users",
    "admin_api_users",
    parse_admin_users,
    None,
    'Admin API users as JSON, [{"username": ..., "password": ..., "admin": true}]; '
    "without users the API does not start (prefer the environment: a command line is "
    "visible to other local users)",
    secret=True,
)
SECURED_METRICS = Setting(
    "GATEWAY_SECURED_METRICS",
    "secured-metrics",
    "secured_metrics",
    boolean,
    "true",
    "true: /metrics needs an admin API user too; false: anyone reaching the port may scrape",
)
ADMIN_API_OPEN_ON_LOOPBACK = Setting(
    "GATEWAY_ADMIN_API_OPEN_ON_LOOPBACK",
    "admin-api-open-on-loopback",
    "admin_api_open_on_loopback",
    boolean,
    "false",
    "true: with no users, serve the admin API without authentication, but only when "
    f"{HTTP_BIND_HOST.env} is a loopback address",
)
LOG_FORMAT = Setting(
    "GATEWAY_LOG_FORMAT",
    "log-format",
    "log_format",
    log_format,
    "text",
    "text, or json: one JSON object per line for log shippers",
)


#: Every setting, in the order C{--help} and the README list them.
SETTINGS: tuple[Setting[Any], ...] = (
    BOOTSTRAP_SERVERS,
    BIND_HOST,
    ADVERTISED_HOST,
    PORT_START,
    PORT_COUNT,
    MIN_BROKER_ID,
    MAX_FRAME_BYTES,
    METADATA_REFRESH,
    UPSTREAM_CONNECT_TIMEOUT,
    CLUSTER_ID,
    GROUP_ID,
    RACK_ID,
    INTERNAL_LOAD_BALANCING,
    GROUP_SESSION_TIMEOUT,
    GROUP_HEARTBEAT_INTERVAL,
    SHUTDOWN_DELAY_BETWEEN_BROKERS,
    HTTP_PORT,
    HTTP_BIND_HOST,
    HTTP_TLS_KEY,
    HTTP_TLS_CERT,
    ADMIN_API_USERS,
    SECURED_METRICS,
    ADMIN_API_OPEN_ON_LOOPBACK,
    # Issue 12: memory and time limits (kgateway.limits), peer checks (kgateway.cluster).
    *limits.ROWS,
    *peer_settings.ROWS,
    LOG_FORMAT,
    # Issue 13, client side: TLS towards clients (kgateway.security.server_config) and
    # several listeners (kgateway.listener).
    *client_tls.ROWS,
    LISTENER_NAMES,
    *sni_config.ROWS,  # Issue 14: SNI host routing (kgateway.routing.sni_config).
    # Issue 13, broker side: how the node and every broker leg reach Kafka
    # (kgateway.security.broker_config).
    *broker_config.ROWS,
)

KAFKA_CLIENT = Family(
    "KAFKA_",
    "kafka",
    kafka_client_settings,
    "other Kafka client settings, as Kafka names them (KAFKA_CLIENT_ID is client.id): read "
    "but not used",
)

#: Every family of settings keyed by a name.
FAMILIES: tuple[Family, ...] = (KAFKA_CLIENT, LISTENERS)


@dataclass(frozen=True)
class Settings:
    """Checked settings for one gateway node; each default is its L{Setting}'s."""

    bootstrap_servers: tuple[HostPort, ...]
    bind_host: str = BIND_HOST.initial()
    advertised_host: str = field(default_factory=socket.gethostname)
    port_start: int = PORT_START.initial()
    port_count: int | None = None
    min_broker_id: int = MIN_BROKER_ID.initial()
    max_frame_bytes: int = MAX_FRAME_BYTES.initial()
    metadata_refresh_seconds: float = METADATA_REFRESH.initial()
    upstream_connect_timeout_seconds: float = UPSTREAM_CONNECT_TIMEOUT.initial()
    cluster_id: str = CLUSTER_ID.initial()
    #: Empty: C{kgateway_<cluster id>}.
    group_id: str = ""
    rack_id: str | None = None
    internal_load_balancing: bool = INTERNAL_LOAD_BALANCING.initial()
    group_session_timeout_ms: int = GROUP_SESSION_TIMEOUT.initial()
    group_heartbeat_interval_ms: int = GROUP_HEARTBEAT_INTERVAL.initial()
    shutdown_delay_between_brokers_seconds: float = SHUTDOWN_DELAY_BETWEEN_BROKERS.initial()
    http_port: int = HTTP_PORT.initial()
    http_bind_host: str = HTTP_BIND_HOST.initial()
    #: HTTPS for the admin API, or None for plain HTTP.
    http_tls: HttpTls | None = None
    admin_api_users: tuple[AdminUser, ...] = ()
    secured_metrics: bool = SECURED_METRICS.initial()
    admin_api_open_on_loopback: bool = ADMIN_API_OPEN_ON_LOOPBACK.initial()
    # Issue 12: memory and time limits.
    max_buffered_bytes: int = limits.MAX_BUFFERED_BYTES.initial()
    max_pre_auth_frame_bytes: int = limits.MAX_PRE_AUTH_FRAME_BYTES.initial()
    connections_max_idle_seconds: float = limits.CONNECTIONS_MAX_IDLE.initial()
    request_receive_timeout_seconds: float = limits.REQUEST_RECEIVE_TIMEOUT.initial()
    listen_backlog: int = limits.LISTEN_BACKLOG.initial()
    peer_check_interval_seconds: float = peer_settings.PEER_CHECK_INTERVAL.initial()
    peer_check_timeout_seconds: float = peer_settings.PEER_CHECK_TIMEOUT.initial()
    peer_check_misses: int = peer_settings.PEER_CHECK_MISSES.initial()
    log_format: str = LOG_FORMAT.initial()
    #: The other C{KAFKA_*} client settings, as Kafka names them (not shown: who knows
    #: what they hold).
    kafka: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: How the node and the broker legs reach the brokers (issue 13).
    broker_security: BrokerSecurity = field(default_factory=BrokerSecurity)
    # Issue 13, client side.
    #: What clients speak to the node (every listener's default).
    security_protocol: str = "PLAINTEXT"
    #: Client certificates on TLS listeners (every TLS listener's default).
    ssl_client_auth: str = client_tls.CLIENT_AUTH_ROW.initial()
    #: What the TLS listeners serve; None when no listener speaks TLS.
    server_tls: ServerTls | None = None
    #: The node's listeners; empty: one, DEFAULT, made from the single-listener fields
    #: when the settings are made (so a C{replace} of those fields keeps the old listener).
    listeners: tuple[Listener, ...] = ()
    #: Issue 14: routing by server name (SNI), and how the broker names are made.
    host_routing: sni_config.HostRouting = field(default_factory=sni_config.HostRouting)

    def __post_init__(self) -> None:
        if not self.group_id:
            object.__setattr__(self, "group_id", f"kgateway_{self.cluster_id}")
        if not self.listeners:
            default = default_listener(self._defaults(), self.port_start, self.port_count, False)
            object.__setattr__(self, "listeners", (default,))

    def _defaults(self, protocol_from: str = "", auth_given: bool = False) -> ListenerDefaults:
        """The node-wide settings every listener takes where it sets nothing of its own."""
        return ListenerDefaults(
            self.security_protocol,
            protocol_from or client_tls.SECURITY_PROTOCOL,
            self.advertised_host,
            self.bind_host,
            self.ssl_client_auth,
            auth_given,
            self.host_routing.listener_routing,
        )

    @property
    def license_topic(self) -> str:
        """The cluster's internal license topic."""
        return f"_kgateway_{self.cluster_id}_license"

    @property
    def interceptors_topic(self) -> str:
        """The cluster's interceptor configurations."""
        return f"_kgateway_{self.cluster_id}_interceptors"

    @property
    def admin_api_refusal(self) -> str | None:
        """Why the admin API must not start (no users, and not open on loopback), or None."""
        if self.admin_api_users:
            return None
        users, loopback, bind = (
            ADMIN_API_USERS.env,
            ADMIN_API_OPEN_ON_LOOPBACK.env,
            HTTP_BIND_HOST.env,
        )
        if not self.admin_api_open_on_loopback:
            return (
                f"no admin API users: set {users} to a JSON list of "
                f'{{"username", "password", "admin"}} (or {loopback}=true '
                f"with a loopback {bind})"
            )
        if not is_loopback(self.http_bind_host):
            return (
                f"{loopback}=true but {bind}={self.http_bind_host!r} is not a loopback address: "
                f"bind to 127.0.0.1 or ::1, or set {users}"
            )
        return None

    @classmethod
    def load(cls, environ: Mapping[str, str], options: Mapping[str, str | None]) -> Settings:
        """Read every setting; an option given on the command line wins over the environment."""
        given = {row: row.read(environ, options) for row in SETTINGS}
        for row, value in given.items():
            if row.required and value is None:
                raise ConfigError(
                    f"{row.env} is not set (nor --{row.option}); it is required: {row.about}"
                )
        families = {family.field: family.read(environ) for family in FAMILIES}
        variables = families.pop(LISTENERS.field)
        names = given[LISTENER_NAMES]
        _check_single_or_named(given, names, variables)
        kafka_protocol = (
            given[broker_config.SECURITY_PROTOCOL] or broker_config.SECURITY_PROTOCOL.initial()
        )
        protocol_from = client_tls.SECURITY_PROTOCOL
        if given[client_tls.SECURITY_PROTOCOL_ROW] is None:
            if given[broker_config.SECURITY_PROTOCOL] is not None:
                protocol_from = broker_config.SECURITY_PROTOCOL.env
            given[client_tls.SECURITY_PROTOCOL_ROW] = client_tls.SECURITY_PROTOCOL_ROW.parse(
                protocol_from, kafka_protocol
            )
        fields = {
            row.field: value for row, value in given.items() if row.field and value is not None
        }
        settings = cls(
            **fields,
            **families,
            http_tls=http_tls(
                HTTP_TLS_KEY.env, given[HTTP_TLS_KEY], HTTP_TLS_CERT.env, given[HTTP_TLS_CERT]
            ),
            host_routing=sni_config.host_routing_from(given.get),
        )
        start, count = settings.port_start, settings.port_count
        if count is not None and start + count - 1 > 65535:
            raise ConfigError(
                f"{PORT_COUNT.env}={count} with {PORT_START.env}={start} goes past port 65535; "
                f"valid: at most {65536 - start}"
            )
        defaults = settings._defaults(protocol_from, given[client_tls.CLIENT_AUTH_ROW] is not None)
        if names is None:
            listeners: tuple[Listener, ...] = (default_listener(defaults, start, count),)
        else:
            listeners = read_listeners(names, variables, defaults)
        refusal = client_login_refusal(listeners, kafka_protocol)
        if refusal is not None:
            raise ConfigError(refusal)
        # After the refusal: which clients may sit in front of SASL brokers is the
        # first thing to fix, before the node's own login.
        broker_side = broker_config.broker_security_from(given)
        tls = server_tls(lambda row: given.get(row), listeners, protocol_from)
        if tls is not None:
            # Read the stores once now: a bad one stops the start with its one line.
            ServerContexts(tls, {each.client_auth for each in listeners if each.tls})
        return replace(settings, listeners=listeners, server_tls=tls, broker_security=broker_side)


def _check_single_or_named(
    given: Mapping[Setting[Any], Any], names: tuple[str, ...] | None, variables: Mapping[str, str]
) -> None:
    """Listeners are named, or one made of the single-listener settings; never both."""
    if names is None and variables:
        raise ConfigError(
            f"{min(variables)} is set but {LISTENER_NAMES.env} is not: name the listeners "
            f"there, e.g. {LISTENER_NAMES.env}=INTERNAL,EXTERNAL"
        )
    if names is None:
        return
    for single in (PORT_START, PORT_COUNT):
        if given[single] is not None:
            raise ConfigError(
                f"{single.env} is set beside {LISTENER_NAMES.env}: each listener has its own "
                f"ports ({LISTENER_PREFIX}<NAME>_PORTS); unset {single.env}"
            )


def main(argv: Sequence[str]) -> int:
    """C{python -m kgateway.config --markdown}: print the README's settings table."""
    if list(argv) != ["--markdown"]:
        sys.stderr.write("usage: python -m kgateway.config --markdown\n")
        return 2
    sys.stdout.write(settings_table(SETTINGS, FAMILIES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
