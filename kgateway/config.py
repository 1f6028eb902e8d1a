"""
The node's settings: environment variables, overridden by twistd options.

Every setting is read and checked here, once, at start-up.  A bad value
becomes a L{ConfigError} whose message is one line naming the setting, the
value and what would be valid; the plugin turns it into an exit, never a
traceback.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kgateway.net import HostPort
from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES

T = TypeVar("T")


class ConfigError(Exception):
    """A setting has a value the node cannot run with."""


@dataclass(frozen=True)
class Setting:
    """One setting: its environment variable, twistd option, default and meaning."""

    env: str
    option: str
    default: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "KAFKA_BOOTSTRAP_SERVERS",
        "bootstrap-servers",
        None,
        "Kafka brokers to bootstrap from, host:port[,host:port...] (required)",
    ),
    Setting("GATEWAY_BIND_HOST", "bind-host", "0.0.0.0", "Address the broker ports listen on"),
    Setting(
        "GATEWAY_ADVERTISED_HOST",
        "advertised-host",
        None,
        "Host name clients are given for this node (default: this machine's host name)",
    ),
    Setting(
        "GATEWAY_PORT_START",
        "port-start",
        "6969",
        "First port; port = start + broker id - min broker id",
    ),
    Setting(
        "GATEWAY_PORT_COUNT",
        "port-count",
        None,
        "How many ports (default: highest broker id - min broker id + 3)",
    ),
    Setting("GATEWAY_MIN_BROKERID", "min-broker-id", "0", "The broker id that gets the first port"),
    Setting(
        "GATEWAY_MAX_FRAME_BYTES",
        "max-frame-bytes",
        str(DEFAULT_MAX_FRAME_BYTES),
        "Largest Kafka frame accepted from a client or broker, in bytes",
    ),
    Setting(
        "GATEWAY_METADATA_REFRESH_MS",
        "metadata-refresh-ms",
        "5000",
        "How often the node refreshes its view of the brokers",
    ),
    Setting(
        "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS",
        "upstream-connect-timeout-ms",
        "10000",
        "How long to wait for a broker connection",
    ),
    Setting(
        "GATEWAY_CLUSTER_ID",
        "cluster-id",
        "gateway",
        "Nodes with the same cluster id form one gateway cluster",
    ),
    Setting(
        "GATEWAY_GROUP_ID",
        "group-id",
        None,
        "Kafka consumer group the nodes join (default: kgateway_<cluster id>)",
    ),
    Setting("GATEWAY_RACK_ID", "rack-id", None, "This node's rack, matched to brokers' racks"),
    Setting(
        "GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING",
        "internal-load-balancing",
        "true",
        "true: spread brokers over the live nodes; false: advertise GATEWAY_ADVERTISED_HOST "
        "(a load balancer) for every broker",
    ),
    Setting(
        "GATEWAY_GROUP_SESSION_TIMEOUT_MS",
        "group-session-timeout-ms",
        "10000",
        "After this long without a heartbeat a crashed node is dropped (Kafka allows 6000+)",
    ),
    Setting(
        "GATEWAY_GROUP_HEARTBEAT_INTERVAL_MS",
        "group-heartbeat-interval-ms",
        "250",
        "How often a node heartbeats, and so how soon it sees others join or leave",
    ),
    Setting(
        "GATEWAY_SHUTDOWN_DELAY_BETWEEN_BROKERS_MS",
        "shutdown-delay-between-brokers-ms",
        "0",
        "On shutdown, the pause between closing the connections of one broker and the next",
    ),
    Setting("GATEWAY_HTTP_PORT", "http-port", "8888", "Port of the HTTP admin API"),
    Setting(
        "GATEWAY_HTTP_BIND_HOST", "http-bind-host", "0.0.0.0", "Address the admin API listens on"
    ),
    Setting(
        "GATEWAY_HTTP_TLS_KEY",
        "http-tls-key",
        None,
        "PEM private key file: serve the admin API over HTTPS (with GATEWAY_HTTP_TLS_CERT)",
    ),
    Setting(
        "GATEWAY_HTTP_TLS_CERT",
        "http-tls-cert",
        None,
        "PEM certificate file for the admin API's HTTPS (with GATEWAY_HTTP_TLS_KEY)",
    ),
    Setting(
        "GATEWAY_ADMIN_API_USERS",
        "admin-api-users",
        None,
        'Admin API users as JSON, [{"username": ..., "password": ..., "admin": true}]; '
        "without users the API does not start (prefer the environment: a command line is "
        "visible to other local users)",
    ),
    Setting(
        "GATEWAY_SECURED_METRICS",
        "secured-metrics",
        "true",
        "true: /metrics needs an admin API user too; false: anyone reaching the port may scrape",
    ),
    Setting(
        "GATEWAY_ADMIN_API_OPEN_ON_LOOPBACK",
        "admin-api-open-on-loopback",
        "false",
        "true: with no users, serve the admin API without authentication, but only when "
        "GATEWAY_HTTP_BIND_HOST is a loopback address",
    ),
    Setting(
        "GATEWAY_LOG_FORMAT",
        "log-format",
        "text",
        "text, or json: one JSON object per line for log shippers",
    ),
)

LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class AdminUser:
    """One user of the admin API; the password never appears in a repr or a log."""

    username: str
    password: str = field(repr=False)
    admin: bool = False


@dataclass(frozen=True)
class HttpTls:
    """The PEM files that turn the admin API into HTTPS."""

    key_path: str
    cert_path: str


SUPPORTED_SECURITY_PROTOCOLS = ("PLAINTEXT",)


@dataclass(frozen=True)
class Settings:
    """Checked settings for one gateway node."""

    bootstrap_servers: tuple[HostPort, ...]
    bind_host: str = "0.0.0.0"
    advertised_host: str = field(default_factory=socket.gethostname)
    port_start: int = 6969
    port_count: int | None = None
    min_broker_id: int = 0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    metadata_refresh_seconds: float = 5.0
    upstream_connect_timeout_seconds: float = 10.0
    cluster_id: str = "gateway"
    group_id: str = "kgateway_gateway"
    rack_id: str | None = None
    internal_load_balancing: bool = True
    group_session_timeout_ms: int = 10000
    group_heartbeat_interval_ms: int = 250
    shutdown_delay_between_brokers_seconds: float = 0.0
    http_port: int = 8888
    http_bind_host: str = "0.0.0.0"
    #: HTTPS for the admin API, or None for plain HTTP.
    http_tls: HttpTls | None = None
    admin_api_users: tuple[AdminUser, ...] = ()
    secured_metrics: bool = True
    admin_api_open_on_loopback: bool = False
    log_format: str = "text"
    #: C{KAFKA_*} client settings for the broker side, as Kafka names them.
    kafka: Mapping[str, str] = field(default_factory=dict)

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
        if not self.admin_api_open_on_loopback:
            return (
                "no admin API users: set GATEWAY_ADMIN_API_USERS to a JSON list of "
                '{"username", "password", "admin"} (or GATEWAY_ADMIN_API_OPEN_ON_LOOPBACK=true '
                "with a loopback GATEWAY_HTTP_BIND_HOST)"
            )
        if not is_loopback(self.http_bind_host):
            return (
                f"GATEWAY_ADMIN_API_OPEN_ON_LOOPBACK=true but GATEWAY_HTTP_BIND_HOST="
                f"{self.http_bind_host!r} is not a loopback address: bind to 127.0.0.1 or ::1, "
                "or set GATEWAY_ADMIN_API_USERS"
            )
        return None

    @classmethod
    def load(cls, environ: Mapping[str, str], options: Mapping[str, str | None]) -> Settings:
        """Read every setting; an option given on the command line wins over the environment."""
        raw: dict[str, str | None] = {}
        for setting in SETTINGS:
            value = options.get(setting.option)
            if value is None:
                value = environ.get(setting.env, setting.default)
            if value is not None and value.strip() == "" and setting.default is None:
                value = None
            raw[setting.env] = value

        def get(name: str, parse: Callable[[str, str], T], default: T) -> T:
            value = raw[name]
            return default if value is None else parse(name, value)

        bootstrap = raw["KAFKA_BOOTSTRAP_SERVERS"]
        if bootstrap is None:
            raise ConfigError(
                "KAFKA_BOOTSTRAP_SERVERS is not set: give host:port[,host:port...] of your "
                "Kafka brokers (or --bootstrap-servers)"
            )
        kafka = kafka_client_settings(environ)
        protocol = kafka.get("security.protocol", "PLAINTEXT").upper()
        if protocol not in SUPPORTED_SECURITY_PROTOCOLS:
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL={protocol!r} is not supported yet; valid: "
                + ", ".join(SUPPORTED_SECURITY_PROTOCOLS)
            )
        cluster_id = get("GATEWAY_CLUSTER_ID", _name, "gateway")
        port_start = get("GATEWAY_PORT_START", _port, 6969)
        port_count = get("GATEWAY_PORT_COUNT", _positive_int, None)
        if port_count is not None and port_start + port_count - 1 > 65535:
            raise ConfigError(
                f"GATEWAY_PORT_COUNT={port_count} with GATEWAY_PORT_START={port_start} "
                f"goes past port 65535; valid: at most {65536 - port_start}"
            )
        return cls(
            bootstrap_servers=parse_servers("KAFKA_BOOTSTRAP_SERVERS", bootstrap),
            bind_host=get("GATEWAY_BIND_HOST", _host, "0.0.0.0"),
            advertised_host=get("GATEWAY_ADVERTISED_HOST", _host, socket.gethostname()),
            port_start=port_start,
            port_count=port_count,
            min_broker_id=get("GATEWAY_MIN_BROKERID", _non_negative_int, 0),
            max_frame_bytes=get("GATEWAY_MAX_FRAME_BYTES", _positive_int, DEFAULT_MAX_FRAME_BYTES),
            metadata_refresh_seconds=get("GATEWAY_METADATA_REFRESH_MS", _positive_int, 5000) / 1000,
            upstream_connect_timeout_seconds=get(
                "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS", _positive_int, 10000
            )
            / 1000,
            cluster_id=cluster_id,
            group_id=get("GATEWAY_GROUP_ID", _name, f"kgateway_{cluster_id}"),
            rack_id=get("GATEWAY_RACK_ID", _name, None),
            internal_load_balancing=get(
                "GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING", _boolean, True
            ),
            group_session_timeout_ms=get("GATEWAY_GROUP_SESSION_TIMEOUT_MS", _positive_int, 10000),
            group_heartbeat_interval_ms=get(
                "GATEWAY_GROUP_HEARTBEAT_INTERVAL_MS", _positive_int, 250
            ),
            shutdown_delay_between_brokers_seconds=get(
                "GATEWAY_SHUTDOWN_DELAY_BETWEEN_BROKERS_MS", _non_negative_int, 0
            )
            / 1000,
            http_port=get("GATEWAY_HTTP_PORT", _port, 8888),
            http_bind_host=get("GATEWAY_HTTP_BIND_HOST", _host, "0.0.0.0"),
            http_tls=_http_tls(raw["GATEWAY_HTTP_TLS_KEY"], raw["GATEWAY_HTTP_TLS_CERT"]),
            admin_api_users=get("GATEWAY_ADMIN_API_USERS", parse_admin_users, ()),
            secured_metrics=get("GATEWAY_SECURED_METRICS", _boolean, True),
            admin_api_open_on_loopback=get("GATEWAY_ADMIN_API_OPEN_ON_LOOPBACK", _boolean, False),
            log_format=get("GATEWAY_LOG_FORMAT", _log_format, "text"),
            kafka=kafka,
        )


def kafka_client_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """C{KAFKA_SECURITY_PROTOCOL=X} becomes C{security.protocol=X}, as Kafka's images do."""
    return {
        name[len("KAFKA_") :].lower().replace("_", "."): value
        for name, value in environ.items()
        if name.startswith("KAFKA_") and name != "KAFKA_BOOTSTRAP_SERVERS"
    }


def parse_servers(name: str, value: str) -> tuple[HostPort, ...]:
    """Parse C{host:port[,host:port...]}."""
    servers = []
    for item in value.split(","):
        item = item.strip()
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if not sep or not host:
            raise ConfigError(f"{name}={value!r}: {item!r} is not host:port")
        servers.append(HostPort(host, _port(name, port, whole=value)))
    return tuple(servers)


def _int(name: str, value: str, whole: str | None = None) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigError(f"{name}={whole or value!r}: {value!r} is not a whole number") from None


def _port(name: str, value: str, whole: str | None = None) -> int:
    port = _int(name, value, whole)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}={whole or value!r}: {port} is not a port number (1-65535)")
    return port


def _positive_int(name: str, value: str) -> int:
    number = _int(name, value)
    if number < 1:
        raise ConfigError(f"{name}={value!r}: must be 1 or more")
    return number


def _non_negative_int(name: str, value: str) -> int:
    number = _int(name, value)
    if number < 0:
        raise ConfigError(f"{name}={value!r}: must be 0 or more")
    return number


def _host(name: str, value: str) -> str:
    host = value.strip()
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"{name}={value!r}: not a host name or address")
    return host


def _name(name: str, value: str) -> str:
    """A Kafka-safe name: letters, digits, '.', '_' and '-'."""
    text = value.strip()
    if not text or any(not (c.isalnum() or c in "._-") for c in text):
        raise ConfigError(f"{name}={value!r}: use letters, digits, '.', '_' and '-' only")
    return text


def _boolean(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r}: valid: true or false")


def is_loopback(host: str) -> bool:
    """Whether C{host} is a loopback address (or C{localhost})."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_admin_users(name: str, value: str) -> tuple[AdminUser, ...]:
    """Read the admin API users; errors never repeat the value, which holds passwords."""
    try:
        raw = json.loads(value)
    except ValueError as e:
        raise ConfigError(f"{name} is not valid JSON ({e}); valid: {_USERS_SHAPE}") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{name} must be a JSON list; valid: {_USERS_SHAPE}")
    users: list[AdminUser] = []
    for index, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{name}: entry {index} is not an object; valid: {_USERS_SHAPE}")
        username, password = entry.get("username"), entry.get("password")
        admin = entry.get("admin", False)
        if not isinstance(username, str) or not username or ":" in username:
            raise ConfigError(
                f"{name}: entry {index} needs a non-empty \"username\" string without ':'"
            )
        if not isinstance(password, str) or not password:
            raise ConfigError(f'{name}: user {username!r} needs a non-empty "password" string')
        if not isinstance(admin, bool):
            raise ConfigError(f'{name}: user {username!r}: "admin" must be true or false')
        unknown = sorted(set(entry) - {"username", "password", "admin"})
        if unknown:
            raise ConfigError(
                f"{name}: user {username!r} has unknown key(s) {', '.join(unknown)}; "
                "valid: username, password, admin"
            )
        if any(user.username == username for user in users):
            raise ConfigError(f"{name}: user {username!r} is listed twice")
        users.append(AdminUser(username, password, admin))
    return tuple(users)


_USERS_SHAPE = '[{"username": "ops", "password": "...", "admin": true}]'


def _http_tls(key: str | None, cert: str | None) -> HttpTls | None:
    if key is None and cert is None:
        return None
    if key is None or cert is None:
        given, missing = (
            ("GATEWAY_HTTP_TLS_CERT", "GATEWAY_HTTP_TLS_KEY")
            if key is None
            else ("GATEWAY_HTTP_TLS_KEY", "GATEWAY_HTTP_TLS_CERT")
        )
        raise ConfigError(f"{given} is set but {missing} is not: HTTPS needs both PEM files")
    contents = []
    for name, path in (("GATEWAY_HTTP_TLS_KEY", key), ("GATEWAY_HTTP_TLS_CERT", cert)):
        try:
            contents.append(Path(path).read_bytes())
        except OSError as e:
            raise ConfigError(f"{name}={path!r}: cannot read it ({e.strerror})") from None
    from twisted.internet.ssl import PrivateCertificate

    try:
        PrivateCertificate.loadPEM(contents[1] + b"\n" + contents[0])
    except Exception as e:
        raise ConfigError(
            f"GATEWAY_HTTP_TLS_CERT={cert!r} with GATEWAY_HTTP_TLS_KEY={key!r}: not a PEM "
            f"certificate and its matching private key ({type(e).__name__}: {e})"
        ) from None
    return HttpTls(key, cert)


def _log_format(name: str, value: str) -> str:
    text = value.strip().lower()
    if text not in LOG_FORMATS:
        raise ConfigError(f"{name}={value!r}: valid: {' or '.join(LOG_FORMATS)}")
    return text
