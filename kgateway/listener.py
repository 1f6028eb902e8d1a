"""
A node's listeners: each a name, a port range, a security protocol, the
host it advertises and binds, and how it routes.

One node can serve, say, PLAINTEXT inside a Kubernetes cluster and
SASL_SSL outside.  C{GATEWAY_LISTENER_NAMES=INTERNAL,EXTERNAL} names the
listeners and C{GATEWAY_LISTENER_<NAME>_*} describes each (L{read_listeners});
without it the single-listener settings (C{GATEWAY_PORT_START},
C{GATEWAY_BIND_HOST}, ...) make one listener named C{DEFAULT}.

With listeners, the node-wide C{GATEWAY_ADVERTISED_HOST}, C{GATEWAY_BIND_HOST},
C{GATEWAY_SECURITY_PROTOCOL} and C{GATEWAY_SSL_CLIENT_AUTH} are each
listener's default (a listener's own setting wins); C{GATEWAY_PORT_START} and
C{GATEWAY_PORT_COUNT} describe one port range only, so they are refused
beside C{GATEWAY_LISTENER_NAMES}.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kgateway.interfaces import DEFAULT_LISTENER
from kgateway.setting import ConfigError, Family, Setting, host, port

#: Every prefix of a listener's own settings: C{GATEWAY_LISTENER_<NAME>_<KEY>}.
LISTENER_PREFIX = "GATEWAY_LISTENER_"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
CLIENT_AUTH = ("NONE", "REQUEST", "REQUIRE")
ROUTINGS = ("port", "sni")

#: The keys of one listener's settings, and what each means (for --help and the README).
KEYS: dict[str, str] = {
    "PORTS": "FIRST-LAST (inclusive, e.g. 9092-9099) or FIRST (the count as "
    "GATEWAY_PORT_COUNT's default); required",
    "SECURITY_PROTOCOL": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (default "
    "GATEWAY_SECURITY_PROTOCOL)",
    "ADVERTISED_HOST": "host name clients are given (default GATEWAY_ADVERTISED_HOST)",
    "BIND_ADDRESS": "address its ports listen on (default GATEWAY_BIND_HOST)",
    "SSL_CLIENT_AUTH": "NONE, REQUEST or REQUIRE (default GATEWAY_SSL_CLIENT_AUTH)",
    "ROUTING": "port (a port per broker) or sni (one TLS port, the broker chosen by the "
    "server name; default: sni when GATEWAY_ROUTING_MECHANISM=host)",
}

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Listener:
    """One listener of a node, checked."""

    name: str
    port_start: int
    #: None: as many ports as the brokers need (highest id - min id + 3).
    port_count: int | None
    security_protocol: str
    advertised_host: str
    bind_host: str
    client_auth: str = "NONE"
    routing: str = "port"

    @property
    def sni(self) -> bool:
        """Whether it routes by the TLS server name (one port for every broker)."""
        return self.routing == "sni"

    @property
    def tls(self) -> bool:
        """Whether clients speak TLS to it (SSL or SASL_SSL)."""
        return self.security_protocol in TLS_PROTOCOLS

    @property
    def sasl(self) -> bool:
        """Whether clients log in to the brokers over it (SASL_PLAINTEXT or SASL_SSL)."""
        return self.security_protocol in SASL_PROTOCOLS

    def setting(self, key: str) -> str:
        """The environment variable of one of this listener's settings."""
        return f"{LISTENER_PREFIX}{self.name}_{key}"


def security_protocol(name: str, value: str) -> str:
    """One of L{SECURITY_PROTOCOLS} (any case)."""
    text = value.strip().upper()
    if text not in SECURITY_PROTOCOLS:
        raise ConfigError(f"{name}={value!r}: valid: {', '.join(SECURITY_PROTOCOLS)}")
    return text


def client_auth(name: str, value: str) -> str:
    """One of L{CLIENT_AUTH} (any case; Kafka's C{required}/C{requested} too)."""
    text = value.strip().upper()
    text = {"REQUIRED": "REQUIRE", "REQUESTED": "REQUEST"}.get(text, text)
    if text not in CLIENT_AUTH:
        raise ConfigError(f"{name}={value!r}: valid: {', '.join(CLIENT_AUTH)}")
    return text


def routing(name: str, value: str) -> str:
    """C{port} or C{sni} (any case)."""
    text = value.strip().lower()
    if text not in ROUTINGS:
        raise ConfigError(f"{name}={value!r}: valid: {', '.join(ROUTINGS)}")
    return text


def listener_names(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated listener names: letters, digits and '_', upper-cased, each once."""
    names: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if not _NAME.match(item):
            raise ConfigError(
                f"{name}={value!r}: {item!r} is not a listener name: use letters, digits "
                "and '_' (at most 64, starting with a letter), since it becomes part of "
                f"{LISTENER_PREFIX}<NAME>_* variables"
            )
        if item.upper() in names:
            raise ConfigError(f"{name}={value!r}: {item.upper()} is listed twice")
        names.append(item.upper())
    return tuple(names)


def port_range(name: str, value: str) -> tuple[int, int | None]:
    """C{FIRST-LAST} (inclusive) as (first, count), or C{FIRST} as (first, None)."""
    first_text, dash, last_text = value.strip().partition("-")
    first = port(name, first_text, whole=value)
    if not dash:
        return first, None
    last = port(name, last_text, whole=value)
    if last < first:
        raise ConfigError(
            f"{name}={value!r}: the last port {last} is below the first {first}; "
            "valid: FIRST-LAST, e.g. 9092-9099"
        )
    return first, last - first + 1


def listener_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """Every C{GATEWAY_LISTENER_<NAME>_*} variable (the family's raw text)."""
    return {
        key: value
        for key, value in environ.items()
        if key.startswith(LISTENER_PREFIX) and key != f"{LISTENER_PREFIX}NAMES"
    }


@dataclass(frozen=True)
class ListenerDefaults:
    """The node-wide settings a listener takes where it sets nothing of its own."""

    security_protocol: str
    #: Where the security protocol came from, for messages ("GATEWAY_SECURITY_PROTOCOL", ...).
    security_protocol_from: str
    advertised_host: str
    bind_host: str
    client_auth: str
    #: Whether GATEWAY_SSL_CLIENT_AUTH was given (then a plaintext DEFAULT listener refuses it).
    client_auth_given: bool = False
    #: C{sni} when GATEWAY_ROUTING_MECHANISM=host.
    routing: str = "port"


#: The node-wide setting that makes every listener route by server name.
ROUTING_MECHANISM = "GATEWAY_ROUTING_MECHANISM"


def check_sni(listener: Listener, routing_from: str, protocol_from: str, ports_from: str) -> None:
    """An SNI listener speaks TLS (the server name is in the ClientHello) and has one port."""
    if not listener.sni:
        return
    if not listener.tls:
        raise ConfigError(
            f"{routing_from} needs TLS (the server name comes in the TLS ClientHello), but "
            f"{protocol_from}={listener.security_protocol}: use SSL or SASL_SSL"
        )
    if listener.port_count not in (None, 1):
        raise ConfigError(
            f"{ports_from} gives {listener.port_count} ports, but {routing_from} listens on "
            "one port for every broker: give one port"
        )


def default_listener(
    defaults: ListenerDefaults, port_start: int, port_count: int | None, check: bool = True
) -> Listener:
    """
    The one listener the single-listener settings describe (C{check}: refuse
    SNI without TLS; a placeholder for named listeners need not).
    """
    listener = Listener(
        DEFAULT_LISTENER,
        port_start,
        port_count,
        defaults.security_protocol,
        defaults.advertised_host,
        defaults.bind_host,
        defaults.client_auth if defaults.security_protocol in TLS_PROTOCOLS else "NONE",
        defaults.routing,
    )
    if check:
        check_sni(
            listener,
            f"{ROUTING_MECHANISM}=host",
            defaults.security_protocol_from,
            "GATEWAY_PORT_COUNT",
        )
    if defaults.client_auth_given and defaults.client_auth != "NONE" and not listener.tls:
        raise ConfigError(
            f"GATEWAY_SSL_CLIENT_AUTH={defaults.client_auth} needs TLS, but "
            f"{defaults.security_protocol_from}={listener.security_protocol}: use SSL or "
            "SASL_SSL, or leave GATEWAY_SSL_CLIENT_AUTH unset"
        )
    return listener


def read_listeners(
    names: Sequence[str], variables: Mapping[str, str], defaults: ListenerDefaults
) -> tuple[Listener, ...]:
    """The listeners C{names} name, from their C{GATEWAY_LISTENER_<NAME>_*} C{variables}."""
    known = {f"{LISTENER_PREFIX}{n}_{key}" for n in names for key in KEYS}
    for variable in sorted(variables):
        if variable not in known:
            raise ConfigError(
                f"{variable} is not a setting of any listener in GATEWAY_LISTENER_NAMES "
                f"({','.join(names) or 'unset'}); valid: {LISTENER_PREFIX}<NAME>_"
                + ", _".join(KEYS)
            )
    listeners = [_read_one(name, variables, defaults) for name in names]
    check_overlaps(listeners)
    return tuple(listeners)


def _read_one(name: str, variables: Mapping[str, str], defaults: ListenerDefaults) -> Listener:
    def given(key: str) -> str | None:
        text = variables.get(f"{LISTENER_PREFIX}{name}_{key}")
        return text if text is not None and text.strip() else None

    def env(key: str) -> str:
        return f"{LISTENER_PREFIX}{name}_{key}"

    ports = given("PORTS")
    if ports is None:
        raise ConfigError(
            f"{env('PORTS')} is not set; listener {name} needs its ports: FIRST-LAST "
            "(e.g. 9092-9099) or FIRST"
        )
    first, count = port_range(env("PORTS"), ports)
    text = given("SECURITY_PROTOCOL")
    protocol = (
        defaults.security_protocol
        if text is None
        else security_protocol(env("SECURITY_PROTOCOL"), text)
    )
    text = given("ADVERTISED_HOST")
    advertised = defaults.advertised_host if text is None else host(env("ADVERTISED_HOST"), text)
    text = given("BIND_ADDRESS")
    bind = defaults.bind_host if text is None else host(env("BIND_ADDRESS"), text)
    text = given("SSL_CLIENT_AUTH")
    tls = protocol in TLS_PROTOCOLS
    if text is None:
        auth = defaults.client_auth if tls else "NONE"
    else:
        auth = client_auth(env("SSL_CLIENT_AUTH"), text)
        if auth != "NONE" and not tls:
            raise ConfigError(
                f"{env('SSL_CLIENT_AUTH')}={auth} needs TLS, but listener {name}'s protocol "
                f"is {protocol}: set {env('SECURITY_PROTOCOL')} to SSL or SASL_SSL"
            )
    text = given("ROUTING")
    route = defaults.routing if text is None else routing(env("ROUTING"), text)
    listener = Listener(name, first, count, protocol, advertised, bind, auth, route)
    check_sni(
        listener,
        f"{ROUTING_MECHANISM}=host" if text is None else f"{env('ROUTING')}=sni",
        defaults.security_protocol_from
        if given("SECURITY_PROTOCOL") is None
        else env("SECURITY_PROTOCOL"),
        env("PORTS"),
    )
    return listener


def _span(listener: Listener) -> range:
    # A range to be decided from the brokers takes at least its first port.
    return range(listener.port_start, listener.port_start + (listener.port_count or 1))


def check_overlaps(listeners: Sequence[Listener], spans: Mapping[str, range] | None = None) -> None:
    """
    Refuse two listeners sharing a port (whatever their bind addresses: the
    port alone says which broker a connection is for).  C{spans}: the ranges
    once the brokers decided the open counts; by default the settings' own.
    """
    ranges = [(each, (spans or {}).get(each.name, _span(each))) for each in listeners]
    for index, (one, first) in enumerate(ranges):
        for other, second in ranges[:index]:
            low, high = max(first.start, second.start), min(first.stop, second.stop) - 1
            if low <= high:
                raise ConfigError(
                    f"{one.setting('PORTS')} ({first.start}-{first.stop - 1}) overlaps "
                    f"{other.setting('PORTS')} ({second.start}-{second.stop - 1}) at ports "
                    f"{low}-{high}: give each listener a range of its own"
                )


LISTENER_NAMES = Setting(
    f"{LISTENER_PREFIX}NAMES",
    "listener-names",
    None,
    listener_names,
    None,
    f"Several listeners, e.g. INTERNAL,EXTERNAL, each described by {LISTENER_PREFIX}<NAME>_* "
    "(instead of GATEWAY_PORT_START and GATEWAY_PORT_COUNT)",
    unset=f"one listener, {DEFAULT_LISTENER}, from the settings above",
)

#: Every listener's own settings: C{GATEWAY_LISTENER_<NAME>_<KEY>}, read from the environment.
LISTENERS = Family(
    f"{LISTENER_PREFIX}<NAME>_",
    "listeners",
    listener_variables,
    "for each name in GATEWAY_LISTENER_NAMES: "
    + "; ".join(f"_{key}: {about}" for key, about in KEYS.items()),
)
