"""
The settings of SNI host routing (issue 14), one row each; C{kgateway.config} lists them.

C{GATEWAY_ROUTING_MECHANISM=host} makes every listener route by the TLS
server name (a listener's own C{GATEWAY_LISTENER_<NAME>_ROUTING} wins); the
other rows say how the broker names are made (L{kgateway.routing.sni}).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kgateway.listener import ROUTING_MECHANISM
from kgateway.routing.sni import DEFAULT_PREFIX, DEFAULT_SEPARATOR, SniNames
from kgateway.setting import ConfigError, Setting, port

MECHANISMS = ("port", "host")

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_SEPARATOR = re.compile(r"^[a-z0-9.-]{0,8}$")


def mechanism(name: str, value: str) -> str:
    """C{port} or C{host} (any case)."""
    text = value.strip().lower()
    if text not in MECHANISMS:
        raise ConfigError(
            f"{name}={value!r}: valid: port (a port per broker) or host (one TLS port, the "
            "broker chosen by the server name, SNI)"
        )
    return text


def prefix(name: str, value: str) -> str:
    """The first part of every broker's host name: a DNS label's letters, digits and '-'."""
    text = value.strip().lower()
    if not _LABEL.match(text):
        raise ConfigError(
            f"{name}={value!r}: use 1-32 letters, digits and '-' (not first or last), since "
            "it starts a host name"
        )
    return text


def separator(name: str, value: str) -> str:
    """Between the prefix and the broker id: '-' (one label) or '.', or nothing."""
    text = value.strip().lower()
    if not _SEPARATOR.match(text):
        raise ConfigError(
            f"{name}={value!r}: use at most 8 of letters, digits, '-' and '.' (e.g. '-', "
            "which keeps broker-1 one label that a wildcard certificate covers)"
        )
    return text


ROUTING_MECHANISM_ROW = Setting(
    ROUTING_MECHANISM,
    "routing-mechanism",
    None,
    mechanism,
    "port",
    "port: a port per broker; host: one TLS port for every broker, chosen by the server "
    "name the client asks for (SNI; every listener's default)",
)
ADVERTISED_HOST_PREFIX = Setting(
    "GATEWAY_ADVERTISED_HOST_PREFIX",
    "advertised-host-prefix",
    None,
    prefix,
    DEFAULT_PREFIX,
    "With host routing, broker N is advertised as <prefix><separator>N.<advertised host>",
)
SNI_HOST_SEPARATOR = Setting(
    "GATEWAY_SNI_HOST_SEPARATOR",
    "sni-host-separator",
    None,
    separator,
    DEFAULT_SEPARATOR,
    "With host routing, what stands between the prefix and the broker id",
)
ADVERTISED_SNI_PORT = Setting(
    "GATEWAY_ADVERTISED_SNI_PORT",
    "advertised-sni-port",
    None,
    port,
    None,
    "With host routing, the port clients are given (an ingress on 443 in front of 6969)",
    unset="the port the listener listens on",
)

#: The rows, in the order C{--help} and the README list them.
ROWS: tuple[Setting[Any], ...] = (
    ROUTING_MECHANISM_ROW,
    ADVERTISED_HOST_PREFIX,
    SNI_HOST_SEPARATOR,
    ADVERTISED_SNI_PORT,
)


@dataclass(frozen=True)
class HostRouting:
    """What the host-routing rows say, together."""

    #: C{port} or C{host}.
    mechanism: str = "port"
    names: SniNames = field(default_factory=SniNames)
    #: The port SNI listeners advertise; None: the one each listens on.
    advertised_port: int | None = None

    @property
    def listener_routing(self) -> str:
        """Every listener's routing unless it sets its own."""
        return "sni" if self.mechanism == "host" else "port"


def host_routing_from(given: Callable[[Setting[Any]], Any]) -> HostRouting:
    """The host-routing settings from the rows' values (C{given(row)}; None: not given)."""

    def value(row: Setting[Any]) -> Any:
        read = given(row)
        return row.initial() if read is None and row.default is not None else read

    return HostRouting(
        value(ROUTING_MECHANISM_ROW),
        SniNames(value(ADVERTISED_HOST_PREFIX), value(SNI_HOST_SEPARATOR)),
        value(ADVERTISED_SNI_PORT),
    )
