"""
Routing and bad input against a real gateway node: a port whose broker does
not exist still bootstraps, and a bad frame closes only its own connection.
"""

from __future__ import annotations

import socket
import struct
import time

from twisted.trial.unittest import TestCase

from harness.probe import advertised_brokers

from .environment import shared


def closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Whether the other side closes C{sock} within C{timeout}."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class RoutingTests(TestCase):
    def setUp(self) -> None:
        self.env = shared()
        self.gateway = self.env.gateway

    def expected(self) -> dict[int, tuple[str, int]]:
        return {b: ("127.0.0.1", self.gateway.port_for(b)) for b in (1, 2, 3)}

    def test_port_of_a_missing_broker_still_bootstraps(self) -> None:
        """Brokers are 1-3; the port for broker 5 is relayed to a live broker for metadata."""
        port = self.gateway.port_for(5)
        self.assertIn(port, self.gateway.ports)
        self.assertEqual(advertised_brokers("127.0.0.1", port), self.expected())

    def test_bad_frames_close_only_their_own_connection(self) -> None:
        """An oversized and a malformed frame each close their connection, with a logged reason."""
        port = self.gateway.port_start
        with socket.create_connection(("127.0.0.1", port)) as bystander:
            oversized = socket.create_connection(("127.0.0.1", port))
            oversized.sendall(struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 16)
            malformed = socket.create_connection(("127.0.0.1", port))
            malformed.sendall(struct.pack(">i", 2) + b"\x00\x12")
            self.assertTrue(closed_by_peer(oversized))
            self.assertTrue(closed_by_peer(malformed))
            oversized.close()
            malformed.close()
            # The connection opened before them, and new ones, still work.
            self.assertFalse(closed_by_peer(bystander, timeout=0.5))
            self.assertEqual(advertised_brokers("127.0.0.1", port), self.expected())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = self.gateway.log_path.read_text(errors="replace")
            if "over the limit" in log and "too short for a header" in log:
                break
            time.sleep(0.1)
        log = self.gateway.log_path.read_text(errors="replace")
        self.assertIn("frame of 209715200 bytes is over the limit of 104857600 bytes", log)
        self.assertIn("too short for a header", log)
