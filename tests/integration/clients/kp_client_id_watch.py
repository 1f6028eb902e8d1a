"""kafka-python's codec over one socket: watch when a gateway starts or stops refusing a client id.

Every ``--every`` seconds it sends a Metadata request for ``--topic`` twice, once with
``--refused-id`` and once with ``--allowed-id``, and reads the topic's error code in each
answer.  The first answers are the baseline; it writes ``--ready-file`` once it has one, then
waits until the refused id gets ``--until`` (``enforced``: POLICY_VIOLATION (44) while the
allowed id does not; ``open``: neither does) and reports the wall-clock time it saw that.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Any

from kafka.errors import PolicyViolationError
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kp_common import Deadline, fail, parser, run

POLICY_VIOLATION = PolicyViolationError.errno


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        data += chunk
    return data


def topic_error(sock: socket.socket, correlation_id: int, client_id: str, topic: str) -> int:
    request = MetadataRequest[12](
        topics=[MetadataRequest[12].MetadataRequestTopic(name=topic, topic_id=None)],
        allow_auto_topic_creation=False,
    )
    request.with_header(correlation_id=correlation_id, client_id=client_id)
    sock.sendall(request.encode(header=True, framed=True))
    (size,) = struct.unpack(">i", recv_exactly(sock, 4))
    response = MetadataResponse.decode(recv_exactly(sock, size), version=12, header=True)
    (answer,) = response.topics
    return int(answer.error_code)


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--refused-id", required=True)
    p.add_argument("--allowed-id", required=True)
    p.add_argument("--until", choices=["enforced", "open"], required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--every", type=float, default=0.02)
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    host, port = args.bootstrap.rsplit(":", 1)
    address = (host, int(port))
    allowed_sock = socket.create_connection(address, timeout=10)
    refused_sock: socket.socket | None = None
    correlation = 0
    baseline: tuple[int | str, int] | None = None
    checks = 0
    while not deadline.expired:
        correlation += 1
        refused: int | str
        try:
            if refused_sock is None:
                refused_sock = socket.create_connection(address, timeout=10)
            refused = topic_error(refused_sock, correlation, args.refused_id, args.topic)
        except OSError:
            refused = "closed"
            if refused_sock is not None:
                refused_sock.close()
            refused_sock = None
        allowed = topic_error(allowed_sock, correlation, args.allowed_id, args.topic)
        seen_at = time.time()
        checks += 1
        if baseline is None:
            baseline = (refused, allowed)
            Path(args.ready_file).write_text("ready")
        answered = allowed != POLICY_VIOLATION
        enforced = refused in (POLICY_VIOLATION, "closed") and answered
        is_open = isinstance(refused, int) and refused != POLICY_VIOLATION and answered
        if (args.until == "enforced" and enforced) or (args.until == "open" and is_open):
            allowed_sock.close()
            if refused_sock is not None:
                refused_sock.close()
            return {
                "seen_at": seen_at,
                "baseline": list(baseline),
                "refused_code": refused,
                "allowed_code": allowed,
                "checks": checks,
            }
        time.sleep(args.every)
    fail(f"the gateway never became {args.until} in {args.timeout}s (baseline {baseline})")
    return {}


if __name__ == "__main__":
    run(main)
