"""
Real C{twistd kgateway} processes for integration tests and the demo.

Each node runs as its own process with its own log, tied to this Python
process (it is killed if we die), on a port range chosen to be free.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import REPO_ROOT
from harness.children import die_with_parent, stop_process


class GatewayProcessError(RuntimeError):
    """A gateway node did not start or stop as expected."""


#: Ports already handed out by this process, so nodes made before any of them
#: listens still get ranges of their own.
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    """The first port the kernel hands out for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(count: int, host: str = "127.0.0.1", start: int = 12000) -> int:
    """Find C{count} consecutive free ports, not handed out before, and return the first.

    Only ports below the kernel's ephemeral range are used: a port that is
    free now but ephemeral can be taken by any outgoing connection (a
    broker's, a client's) before the gateway binds it.
    """
    end = _ephemeral_low()
    span = max(end - start - count, 1)
    port = start + (os.getpid() * 37) % span
    for _ in range(2000):
        if port + count > end:
            port = start
        wanted = set(range(port, port + count))
        if wanted & _handed_out:
            port += count
            continue
        with contextlib.ExitStack() as stack:
            try:
                for offset in range(count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind((host, port + offset))
            except OSError:
                port += count
                continue
        _handed_out.update(wanted)
        return port
    raise GatewayProcessError(f"no {count} consecutive free ports found")


def twistd_command() -> list[str]:
    """The twistd of this Python, run as a module so a venv's own is used."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


_live: set[GatewayProcess] = set()


@atexit.register
def _stop_all() -> None:
    for node in list(_live):
        node.kill()


class GatewayProcess:
    """One C{twistd -n kgateway} node."""

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
        self.log_path = log_path
        self.environment = {
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
        }
        self.process: subprocess.Popen[bytes] | None = None

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

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self.process.pid if self.process and self.process.poll() is None else None

    def start(self, timeout: float = 30.0) -> None:
        """Start the node and wait until it listens on all its ports."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        # A restarted node appends to its log: only what this run writes counts.
        started_at = log.tell()
        self.process = subprocess.Popen(
            [*twistd_command(), "-n", "--pidfile=", "kgateway"],
            env=self.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(self.log_path.parent),
            preexec_fn=die_with_parent(),
        )
        log.close()
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GatewayProcessError(
                    f"gateway exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with open(self.log_path, "rb") as written:
                written.seek(started_at)
                this_run = written.read().decode(errors="replace")
            if "Listening on" in this_run:
                return
            time.sleep(0.1)
        self.kill()
        raise GatewayProcessError(f"gateway did not start in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it lingers; return the exit code."""
        if self.process is None:
            return None
        stop_process(self.process, timeout)
        _live.discard(self)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        _live.discard(self)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the node's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> GatewayProcess:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
