"""
Real C{twistd kgateway} processes for integration tests and the demo.

Each node runs as its own process with its own log, tied to this Python
process (it is killed if we die), on a port range chosen to be free.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import REPO_ROOT
from harness.children import ChildError, ChildProcess
from harness.ports import free_port_range


class GatewayProcessError(ChildError):
    """A gateway node did not start or stop as expected."""


def twistd_command() -> list[str]:
    """The twistd of this Python, run as a module so a venv's own is used."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class GatewayProcess(ChildProcess):
    """One C{twistd -n kgateway} node, ready once it logs that it listens."""

    error = GatewayProcessError

    def __init__(
        self,
        bootstrap_servers: str,
        log_path: Path,
        port_start: int | None = None,
        port_count: int = 6,
        min_broker_id: int = 1,
        advertised_host: str = "127.0.0.1",
        bind_host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        extra_pythonpath: Sequence[str | Path] = (),
    ) -> None:
        """
        A node (not started yet); C{extra_pythonpath} goes after the source tree on its
        path: where separately installed plugins live (a C{pip install --target} directory).
        """
        self.port_start = port_start if port_start is not None else free_port_range(port_count)
        #: The admin API's user, with a fresh password for every node.
        self.api_auth = ("kgateway-test", secrets.token_urlsafe(12))
        self.port_count = port_count
        self.min_broker_id = min_broker_id
        self.advertised_host = advertised_host
        super().__init__(
            f"gateway node on {advertised_host}:{self.port_start}",
            log_path,
            env={
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
                "GATEWAY_ADVERTISED_HOST": advertised_host,
                "GATEWAY_BIND_HOST": bind_host,
                "GATEWAY_PORT_START": str(self.port_start),
                "GATEWAY_PORT_COUNT": str(port_count),
                "GATEWAY_MIN_BROKERID": str(min_broker_id),
                "GATEWAY_METADATA_REFRESH_MS": "1000",
                # The admin API on a free port of its own, with one user.
                "GATEWAY_HTTP_PORT": str(free_port_range(1)),
                "GATEWAY_HTTP_BIND_HOST": bind_host,
                "GATEWAY_ADMIN_API_USERS": json.dumps(
                    [{"username": self.api_auth[0], "password": self.api_auth[1], "admin": True}]
                ),
                # The source tree first, so twistd finds this checkout's plugin.
                "PYTHONPATH": os.pathsep.join(
                    [str(REPO_ROOT), *map(str, extra_pythonpath)]
                    + ([os.environ["PYTHONPATH"]] if "PYTHONPATH" in os.environ else [])
                ),
                **(env or {}),
            },
        )

    def command(self) -> list[str]:
        """C{twistd -n kgateway}: in the foreground, without a pid file."""
        return [*twistd_command(), "-n", "--pidfile=", "kgateway"]

    def is_ready(self) -> bool:
        """The node logs C{Listening on} once it has bound its ports; a restarted node's
        earlier runs in the same log do not count."""
        return "Listening on" in self.log_since_start()

    @property
    def http_port(self) -> int:
        """The admin API's port."""
        return int(self.environment["GATEWAY_HTTP_PORT"])

    @property
    def api_url(self) -> str:
        """The admin API's base URL."""
        host = self.environment["GATEWAY_HTTP_BIND_HOST"]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self.http_port}"

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """
        Call the node's admin API as its admin user: (HTTP status, answer).

        C{body} is sent as JSON, or as it is when it is bytes (a malformed body
        on purpose).  The answer is the decoded JSON, the text when it is not
        JSON (/metrics), or None when empty.  OSError while the node does not listen.
        """
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api_url}{path}", data=data, method=method)
        token = base64.b64encode(":".join(self.api_auth).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    @property
    def ports(self) -> range:
        """The node's listening ports."""
        return range(self.port_start, self.port_start + self.port_count)

    def port_for(self, broker_id: int) -> int:
        """The node's port for a broker id."""
        return self.port_start + broker_id - self.min_broker_id

    @property
    def bootstrap(self) -> str:
        """A bootstrap address for clients."""
        return f"{self.advertised_host}:{self.port_start}"
