"""
SNI host routing: one port for every broker, the broker chosen by the TLS server name.

Broker M{N} is advertised as C{<prefix><separator>N.<suffix>}
(C{broker-1.gw.example.com}) at one port; every such name resolves to the
gateway (one wildcard DNS record), and the client's TLS ClientHello names
the host it wants, which L{SniRouter} reads to pick the broker.  The suffix
is a node's own advertised host with internal load balancing (each node is
reached under its own names: L{sni_address}, the address strategy of
L{kgateway.routing.mapping.RackAwareMapper}), or the load balancer's host
with external load balancing (L{FixedSniMapper}: any node serves any name).

A name that is not a broker's (the suffix itself, an unknown name) or no
name at all bootstraps: the connection goes to any live broker, whose
metadata then tells the client the broker names.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from twisted.internet.defer import Deferred
from zope.interface import implementer

from kgateway.interfaces import IAddressMap, IAddressPlanner, IBrokerDirectory, Member
from kgateway.net import HostPort
from kgateway.routing.router import Accepted, IRouter, NoRoute, Route, addresses_for

#: The defaults of C{GATEWAY_ADVERTISED_HOST_PREFIX} and C{GATEWAY_SNI_HOST_SEPARATOR}.
DEFAULT_PREFIX = "broker"
DEFAULT_SEPARATOR = "-"


@dataclass(frozen=True, slots=True)
class SniNames:
    """How a broker id and a suffix make a host name, and back."""

    prefix: str = DEFAULT_PREFIX
    separator: str = DEFAULT_SEPARATOR

    def host_for(self, broker_id: int, suffix: str) -> str:
        """The name that stands for C{broker_id} under C{suffix}: C{broker-1.gw.example.com}."""
        return f"{self.prefix}{self.separator}{broker_id}.{suffix}"

    def broker_in(self, server_name: str | None) -> int | None:
        """The broker id a server name asks for, or None when it names no broker."""
        if not server_name:
            return None
        name = server_name.strip().rstrip(".").lower()
        head = f"{self.prefix}{self.separator}".lower()
        if not name.startswith(head):
            return None
        digits, dot, suffix = name[len(head) :].partition(".")
        if not (dot and suffix and digits.isascii() and digits.isdigit()):
            return None
        return int(digits)


@implementer(IRouter)
class SniRouter:
    """Routes each TLS connection by the server name its ClientHello asked for."""

    def __init__(self, names: SniNames, directory: IBrokerDirectory) -> None:
        self._names = names
        self._directory = directory
        self._turn = itertools.count()

    def route(self, connection: Accepted) -> Deferred[Route]:
        """The broker the server name asks for, or a live broker to bootstrap from."""
        return connection.server_name.addCallback(self._route)

    def _route(self, server_name: str | None) -> Route:
        broker_id = self._names.broker_in(server_name)
        addresses = addresses_for(self._directory, broker_id, next(self._turn))
        if not addresses:
            asked = f"server name {server_name!r}" if server_name else "no server name"
            raise NoRoute(f"with {asked}: no broker is reachable")
        if broker_id is None or self._directory.broker(broker_id) is None:
            # Bootstrapping: the connection stands for the broker it reaches, if known.
            by_address = {b.address: b.node_id for b in self._directory.brokers().values()}
            broker_id = by_address.get(addresses[0], -1 if broker_id is None else broker_id)
        return Route(broker_id, addresses[0], tuple(addresses[1:]))


def covers(certificate_names: Sequence[str], host: str) -> bool:
    """
    Whether a certificate with these DNS names covers C{host}, as a client's
    host-name check decides: the same name, or a wildcard for its first label.
    """
    wanted = host.rstrip(".").lower()
    for name in certificate_names:
        name = name.rstrip(".").lower()
        if name == wanted:
            return True
        if name.startswith("*.") and "." in wanted:
            first, _, rest = wanted.partition(".")
            if first and rest == name[2:]:
                return True
    return False


def sni_address(names: SniNames, member: Member, listener: str, broker_id: int) -> HostPort | None:
    """
    The address of C{broker_id} on a node's SNI listener: the broker's name
    under the node's advertised host, at its advertised port (None when the
    node has no such listener).
    """
    advertised = member.listener(listener)
    if advertised is None:
        return None
    return HostPort(names.host_for(broker_id, advertised.host), advertised.port_start)


@implementer(IAddressMap)
class FixedSniMapping:
    """Every broker under one suffix, at one port."""

    def __init__(self, names: SniNames, suffix: str, port: int) -> None:
        self._names = names
        self._suffix = suffix
        self._port = port

    def address_for(self, broker_id: int) -> HostPort:
        """The broker's name under the suffix."""
        return HostPort(self._names.host_for(broker_id, self._suffix), self._port)


@implementer(IAddressPlanner)
class FixedSniMapper:
    """External load balancing with SNI: the load balancer's host is every name's suffix."""

    def __init__(self, names: SniNames, suffix: str, port: int) -> None:
        self._mapping = FixedSniMapping(names, suffix, port)

    def mapping(self, client: str | None = None) -> IAddressMap:
        """The same mapping for every client."""
        return self._mapping

    def candidates(self, broker_id: int) -> list[HostPort]:
        """The one address of the broker."""
        return [self._mapping.address_for(broker_id)]


def certificate_names(certificate: x509.Certificate) -> list[str]:
    """The DNS names a certificate is good for: its subjectAltName's (or else its CN)."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return [str(each.value) for each in common]
    return [str(name) for name in extension.value.get_values_for_type(x509.DNSName)]


def uncovered(
    certificate: x509.Certificate, names: SniNames, suffix: str, broker_ids: Sequence[int]
) -> str | None:
    """
    Why clients checking host names would refuse every broker name this
    listener advertises (None when the certificate covers one of them).
    """
    hosts = [names.host_for(broker_id, suffix) for broker_id in broker_ids]
    held = certificate_names(certificate)
    if not hosts or any(covers(held, each) for each in hosts):
        return None
    shown = ", ".join(held) or "none"
    return (
        f"the certificate's names ({shown}) cover none of the names it advertises "
        f"({hosts[0]}, ...): clients that check host names will refuse them; add "
        f"*.{suffix} (or each name) to its subjectAltName"
    )
