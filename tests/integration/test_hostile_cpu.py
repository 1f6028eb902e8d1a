"""
Hostile requests against real Kafka, through the shared gateway node.

- ApiVersions v3 with a bad client software name: the broker answers
  INVALID_REQUEST at v3, and the client gets that answer byte for byte as
  the broker sends it (it used to be a reset).
- A Metadata request naming 100,000 topics, while a bystander round-trips on
  another connection: the answer is whole and right (every topic, brokers at
  gateway addresses), and the bystander kept getting answers.  How long it
  waited at most is a figure for the benchmark (bench/hostile_cpu.py), not
  for a test.

Every client run is audited: it reached the gateway and never a broker.
"""

from __future__ import annotations

import json
import socket
import struct

from kafka.protocol.metadata import ApiVersionsRequest
from twisted.trial.unittest import TestCase

from kgateway.protocol.error_codes import ErrorCode
from tests.integration.environment import Environment, shared


def _broker_answer(host: str, port: int, frame: bytes) -> bytes:
    """The test process asks a broker itself (no client does): its answer, framed."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(frame)
        head = sock.recv(4, socket.MSG_WAITALL)
        (size,) = struct.unpack(">i", head)
        return head + sock.recv(size, socket.MSG_WAITALL)


class HostileCpuTests(TestCase):
    env: Environment

    def setUp(self) -> None:
        self.env = shared()

    def hostile(self, *args: str, timeout: float = 300) -> dict[str, object]:
        result = self.env.python_client("kp_hostile.py", *args, timeout=timeout)
        answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
        return answer

    def test_api_versions_invalid_request_reaches_the_client(self) -> None:
        """INVALID_REQUEST for client software name '!!!' comes through as the broker sent it."""
        through = self.hostile("api-versions", "--version", "3", "--software-name", "!!!")
        self.assertTrue(through["answered"], through)
        self.assertEqual(through["error_code"], ErrorCode.INVALID_REQUEST)
        self.assertEqual(through["correlation_id"], 7)
        request = ApiVersionsRequest[3](client_software_name="!!!", client_software_version="1.0")
        request.API_VERSION = 3
        request.with_header(correlation_id=7, client_id="kgateway-hostile")
        broker = self.env.cluster.brokers[0]
        direct = _broker_answer(
            broker.host, broker.port, bytes(request.encode(header=True, framed=True))
        )
        self.assertEqual(through["body_hex"], direct[8:].hex())
        # The v3 shape: error 42, an empty compact array, throttle, no tags; not v0.
        self.assertEqual(direct[8:10], b"\x00\x2a")

    def test_api_versions_good_name_still_answered(self) -> None:
        """The same request with a valid name gets the gateway's reviewed list."""
        answer = self.hostile("api-versions", "--version", "3", "--software-name", "kgateway-it")
        self.assertEqual(answer["error_code"], ErrorCode.NONE)

    def test_metadata_naming_100000_topics(self) -> None:
        """The whole answer arrives right, and a bystander on another connection keeps going."""
        answer = self.hostile(
            "metadata-storm", "--topics", "100000", "--probe", "gateway", timeout=600
        )
        self.assertEqual(answer["correlation_id"], 99)
        self.assertEqual(answer["topics"], 100_000)
        self.assertTrue(answer["names_match"])
        self.assertEqual(
            answer["topic_errors"], {str(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION): 100_000}
        )
        brokers = answer["brokers"]
        assert isinstance(brokers, list)
        self.assertEqual(len(brokers), len(self.env.cluster.brokers))
        for node_id, host, port in brokers:
            self.assertEqual(
                (host, port), (self.env.gateway.advertised_host, self.env.gateway.port_for(node_id))
            )
        self.assertIsNone(answer["bystander_failure"])
        trips = answer["bystander_trips_during"]
        assert isinstance(trips, int)
        self.assertGreater(trips, 0)
