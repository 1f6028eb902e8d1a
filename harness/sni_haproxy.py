"""
A real HAProxy in TCP mode that routes TLS connections by their server name
(C{req.ssl_sni}) without ending TLS: the stand-in for a Kubernetes ingress
with TLS passthrough in front of gateway nodes that route by SNI.

One frontend on C{listen_host:port}.  Each route is a name suffix and the
nodes that serve it: a connection whose ClientHello names C{<anything>.<suffix>}
(or the suffix itself) goes to those nodes; any other name goes to every node
in turn.  Health checks and the connection log are L{harness.haproxy.HAProxy}'s
(every backend's name is C{be_<digits>}, as its log reader expects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.haproxy import HAPROXY, SETTINGS, HAProxy


class SniHAProxy(HAProxy):
    """HAProxy on one port, choosing a backend by the TLS server name."""

    def __init__(
        self,
        listen_host: str,
        port: int,
        servers: Sequence[str],
        routes: Mapping[str, Sequence[str]],
        workdir: Path | None = None,
        check_inter_ms: int | None = 500,
        binary: str = HAPROXY,
        server_port: int | None = None,
    ) -> None:
        """
        @param servers: every node's host (bind address), each at C{server_port} (by default
            C{port}); server I{i} is C{n<i>}.
        @param routes: name suffix -> the hosts (of C{servers}) that serve its names.
        """
        super().__init__(
            listen_host, [port], servers, workdir, check_inter_ms=check_inter_ms, binary=binary
        )
        self.routes = {suffix: list(hosts) for suffix, hosts in routes.items()}
        self.server_port = server_port or port

    def config(self) -> str:
        """The haproxy.cfg text: SNI inspection, one backend per route, the rest round robin."""
        port = self.ports[0]
        lines = [
            *SETTINGS,
            "",
            f"frontend fe_{port}",
            f"    bind {self.listen_host}:{port}",
            "    tcp-request inspect-delay 5s",
            "    tcp-request content accept if { req.ssl_hello_type 1 }",
        ]
        for index, suffix in enumerate(self.routes):
            lines.append(
                f"    use_backend be_{index + 1}{port} if {{ req.ssl_sni -i -m end .{suffix} }} "
                f"or {{ req.ssl_sni -i {suffix} }}"
            )
        lines += [
            "",
            f"    default_backend be_{port}",
            "",
            f"backend be_{port}",
            "    balance roundrobin",
        ]
        check = f" check inter {self.check_inter_ms} fall 2 rise 1" if self.check_inter_ms else ""
        for index, host in enumerate(self.servers):
            lines.append(f"    server n{index} {host}:{self.server_port}{check}")
        for index, hosts in enumerate(self.routes.values()):
            lines += ["", f"backend be_{index + 1}{port}", "    balance roundrobin"]
            for host in hosts:
                name = self.server_name(host)
                track = f" track be_{port}/{name}" if self.check_inter_ms else ""
                lines.append(f"    server {name} {host}:{self.server_port}{track}")
        return "\n".join(lines) + "\n"
