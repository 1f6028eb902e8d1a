"""
A real HAProxy in TCP mode in front of several gateway nodes, for tests of
external load balancing (C{GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING=false}).

One frontend and one backend per port: a connection to C{listen_host:port}
goes to C{port} on one of the nodes (round robin by default).  Health checks
(a TCP connect every C{check_inter_ms}) run only in the first port's backend;
the other backends C{track} those servers, so a node's checks cost one
connection per interval, not one per port.  A connection that meets a dead
node is retried on another one (C{option redispatch 1}).

HAProxy runs in the foreground (C{-db}) as a child tied to this Python process
(C{PR_SET_PDEATHSIG}), with its connection log (C{option tcplog}: one line per
closed connection naming C{backend/server}) and its own messages in one file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from harness.children import ChildError, ChildProcess

HAPROXY = "/usr/sbin/haproxy"
"""The HAProxy binary (Debian package C{haproxy})."""

# option tcplog: client [date] frontend backend/server Tw/Tc/Tt bytes termination_state
# actconn/feconn/beconn/srv_conn/retries (retries "+N" when redispatched) queues
_TCPLOG = re.compile(
    r" fe_(?P<port>\d+) be_\d+/(?P<server>\S+) \S+ \d+ \S+ \d+/\d+/\d+/\d+/(?P<retries>\+?\d+) "
)


#: The global and defaults sections of every configuration the harness writes: TCP mode,
#: logs to stderr, every retry to another server.
SETTINGS = (
    "global",
    "    log stderr format raw local0 info",
    "    maxconn 2000",
    "    nbthread 2",
    "",
    "defaults",
    "    mode tcp",
    "    log global",
    "    option tcplog",
    "    option redispatch 1",
    "    retries 3",
    "    timeout connect 2s",
    "    timeout client 10m",
    "    timeout server 10m",
    "    timeout check 1s",
)


class HAProxyError(ChildError):
    """HAProxy did not start or stop as expected."""


def available(binary: str = HAPROXY) -> bool:
    """Whether the HAProxy binary is installed."""
    return Path(binary).is_file() or shutil.which(binary) is not None


def _listening(host: str, port: int) -> bool:
    """Whether something listens on IPv4 C{host:port}, read from /proc (no connection made)."""
    octets = [int(part) for part in host.split(".")]
    wanted = f"{bytes(reversed(octets)).hex().upper()}:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":  # 0A: TCP_LISTEN
                return True
    return False


class HAProxy(ChildProcess):
    """One C{haproxy -db} process balancing every port over the same port of every node.

    Ready once every frontend port listens.
    """

    error = HAProxyError
    poll_interval = 0.05

    def __init__(
        self,
        listen_host: str,
        ports: Sequence[int],
        servers: Sequence[str],
        workdir: Path | None = None,
        balance: str = "roundrobin",
        check_inter_ms: int | None = 500,
        binary: str = HAPROXY,
    ) -> None:
        """
        @param listen_host: the address the frontends bind (the load balancer's address).
        @param ports: the ports to balance; each goes to the same port on every server.
        @param servers: the nodes' hosts (bind addresses); server I{i} is named C{n<i>}.
        @param workdir: where C{haproxy.cfg} and C{haproxy.log} go (if None, a temp dir that
            L{stop} removes).
        @param check_inter_ms: health-check interval, or None for no health checks.
        """
        if not ports or not servers:
            raise ValueError("HAProxy needs at least one port and one server")
        self.listen_host = listen_host
        self.ports = list(ports)
        self.servers = list(servers)
        self.balance = balance
        self.check_inter_ms = check_inter_ms
        self.binary = binary
        #: A temp dir made here is removed by L{stop}; a given C{workdir} is left alone.
        self._own_workdir = workdir is None
        self.workdir = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="haproxy-"))
        self.config_path = self.workdir / "haproxy.cfg"
        super().__init__(f"haproxy on {listen_host}", self.workdir / "haproxy.log")

    def server_name(self, host: str) -> str:
        """The name HAProxy knows the node at C{host} by."""
        return f"n{self.servers.index(host)}"

    def config(self) -> str:
        """The haproxy.cfg text."""
        lines = list(SETTINGS)
        first = self.ports[0]
        for port in self.ports:
            lines += [
                "",
                f"frontend fe_{port}",
                f"    bind {self.listen_host}:{port}",
                f"    default_backend be_{port}",
                "",
                f"backend be_{port}",
                f"    balance {self.balance}",
            ]
            for index, host in enumerate(self.servers):
                server = f"    server n{index} {host}:{port}"
                if self.check_inter_ms is not None:
                    if port == first:
                        server += f" check inter {self.check_inter_ms} fall 2 rise 1"
                    else:
                        server += f" track be_{first}/n{index}"
                lines.append(server)
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        """HAProxy in the foreground (C{-db}) with the written config."""
        return [self.binary, "-f", str(self.config_path), "-db"]

    def prepare(self) -> None:
        """Write the config and have HAProxy check it, so a mistake names the config."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        checked = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if checked.returncode != 0:
            raise HAProxyError(
                f"haproxy rejected {self.config_path}:\n{checked.stdout}{checked.stderr}"
            )

    def is_ready(self) -> bool:
        """Every frontend port listens."""
        return all(_listening(self.listen_host, port) for port in self.ports)

    def start(self, timeout: float = 10.0) -> None:
        """Write the config, check it, start HAProxy and wait until every port listens."""
        super().start(timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM (HAProxy's hard stop), then SIGKILL if it lingers; the exit code.

        A working folder this object made is removed.
        """
        code = super().stop(timeout)
        if code is not None and self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code

    def connections(self, since: int = 0) -> Counter[str]:
        """Closed client connections per server name, from the tcplog lines after offset C{since}.

        Health checks are not logged, so these are client connections only.
        """
        counts: Counter[str] = Counter()
        for match in _TCPLOG.finditer(self.log_text()[since:]):
            counts[match["server"]] += 1
        return counts

    def retried(self, since: int = 0) -> int:
        """How many logged connections after offset C{since} needed retries (e.g. a dead node)."""
        return sum(m["retries"] != "0" for m in _TCPLOG.finditer(self.log_text()[since:]))

    def is_down(self, host: str) -> bool:
        """Whether HAProxy has logged the node at C{host} as DOWN (and not UP since)."""
        name = self.server_name(host)
        state = None
        for match in re.finditer(
            rf"Server be_{self.ports[0]}/{name} is (?P<state>UP|DOWN)", self.log_text()
        ):
            state = match["state"]
        return state == "DOWN"
