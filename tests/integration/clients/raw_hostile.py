"""A hostile or careless client on raw sockets, as issue 12 measured them.

``partial``: ``--count`` connections each send the first ``--sent`` bytes of a
SaslAuthenticate frame claiming ``--claimed`` bytes, then go silent; reports
after how many seconds the gateway closed each (``--wait`` at most).

``pipeline``: one connection sends ApiVersions, Metadata, a request at
``--over-key`` v``--over-version`` (above what the gateway offers), then
Metadata again, in one write, and reads until the gateway closes or
``--wait`` passes; reports the correlation ids answered (and error codes).

``fetch``: one connection to the gateway port of partition 0's leader
pipelines ``--requests`` Fetch v12 requests for ``--topic`` and reads
nothing for ``--pause`` seconds, sampling the node's
``kgateway_buffered_bytes`` meanwhile (``--metrics-url``, ``--auth``); then
reads and decodes every answer.

``idle``: one connection asks ApiVersions once, then waits to be closed.
"""

from __future__ import annotations

import base64
import socket
import struct
import time
import urllib.request
from typing import Any

from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kp_common import fail, parser, run

CLIENT_ID = "raw-hostile"


def framed(message: Any, correlation_id: int) -> bytes:
    message.with_header(correlation_id=correlation_id, client_id=CLIENT_ID)
    return bytes(message.encode(header=True, framed=True))


def raw(api_key: int, version: int, correlation_id: int, body: bytes = b"") -> bytes:
    """A request with a flexible (v2) header: what the codec may not describe."""
    client = CLIENT_ID.encode()
    payload = struct.pack(">hhih", api_key, version, correlation_id, len(client)) + client
    payload += b"\x00" + body
    return struct.pack(">i", len(payload)) + payload


def api_versions(correlation_id: int, version: int = 3) -> bytes:
    # ApiVersions v3: client software name and version (compact strings), no tags.
    return raw(18, version, correlation_id, b"\x04raw\x021\x00")


def metadata(correlation_id: int, topics: list[str] | None = None) -> bytes:
    request = MetadataRequest[12](
        topics=None
        if topics is None
        else [MetadataRequest[12].MetadataRequestTopic(name=t) for t in topics],
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    return framed(request, correlation_id)


def read_frame(sock: socket.socket) -> bytes | None:
    """One response frame (prefix included), or None once the peer closed."""
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (size,) = struct.unpack(">i", head)
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(min(size - len(body), 1 << 20))
        if not chunk:
            return None
        body += chunk
    return head + bytes(body)


def connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def partial(args: Any) -> dict[str, Any]:
    head = raw(36, 2, 1)[4:]  # SaslAuthenticate v2's header
    frame = struct.pack(">i", args.claimed - 4) + head + bytes(args.sent - 4 - len(head))
    sockets: list[socket.socket] = []
    sent = [0] * args.count
    for _ in range(args.count):
        sock = connect(args.bootstrap)
        sock.setblocking(False)
        sockets.append(sock)
    started = time.monotonic()
    closed: dict[int, float] = {}
    while len(closed) < len(sockets) and time.monotonic() - started < args.wait:
        for index, sock in enumerate(sockets):
            if index in closed:
                continue
            try:
                if sent[index] < len(frame):
                    sent[index] += sock.send(frame[sent[index] : sent[index] + (1 << 20)])
                if sock.recv(1) == b"":
                    closed[index] = time.monotonic() - started
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                closed[index] = time.monotonic() - started
        time.sleep(0.02)
    return {
        "closed_after": sorted(closed.values()),
        "still_open": len(sockets) - len(closed),
        "sent": sent,
    }


def pipeline(args: Any) -> dict[str, Any]:
    sock = connect(args.bootstrap)
    sock.settimeout(args.wait)
    sock.sendall(
        api_versions(1)
        + metadata(2)
        + raw(args.over_key, args.over_version, 3, b"\x00" * 8)
        + metadata(4)
    )
    answered: list[list[int]] = []
    closed = False
    try:
        while True:
            frame = read_frame(sock)
            if frame is None:
                closed = True
                break
            (correlation_id,) = struct.unpack_from(">i", frame, 4)
            # ApiVersions answers use header v0: the error code follows at once.
            (error_code,) = struct.unpack_from(">h", frame, 8)
            answered.append([correlation_id, error_code if correlation_id in (1, 3) else 0])
            if len(answered) == 4:
                break
    except TimeoutError:
        pass
    return {"answered": answered, "closed": closed}


def leader_address(args: Any) -> str:
    sock = connect(args.bootstrap)
    sock.sendall(metadata(1, [args.topic]))
    frame = read_frame(sock)
    sock.close()
    if frame is None:
        fail("no Metadata answer")
    message = MetadataResponse[12].decode(frame[4:], version=12, header=True)
    leader = message.topics[0].partitions[0].leader_id
    for broker in message.brokers:
        if broker.node_id == leader:
            return f"{broker.host}:{broker.port}"
    fail(f"leader {leader} is not among the brokers")
    return ""


def buffered(args: Any) -> float:
    request = urllib.request.Request(args.metrics_url)
    token = base64.b64encode(args.auth.encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("kgateway_buffered_bytes "):
                return float(line.split()[1])
    fail("no kgateway_buffered_bytes in /metrics")
    return 0.0


def fetch(args: Any) -> dict[str, Any]:
    cls = FetchRequest[12]
    topics = cls.FetchTopic
    request = cls(
        replica_id=-1,
        max_wait_ms=100,
        min_bytes=1,
        max_bytes=args.max_bytes,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            topics(
                topic=args.topic,
                partitions=[
                    topics.FetchPartition(
                        partition=0,
                        current_leader_epoch=-1,
                        fetch_offset=0,
                        last_fetched_epoch=-1,
                        log_start_offset=-1,
                        partition_max_bytes=args.max_bytes,
                    )
                ],
            )
        ],
        forgotten_topics_data=[],
        rack_id="",
    )
    address = leader_address(args)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    host, port = address.rsplit(":", 1)
    sock.connect((host, int(port)))
    sock.sendall(b"".join(framed(request, cid) for cid in range(1, args.requests + 1)))
    samples = []
    deadline = time.monotonic() + args.pause
    while time.monotonic() < deadline:
        samples.append(buffered(args))
        time.sleep(0.5)
    sock.settimeout(60)
    answers: list[dict[str, int]] = []
    for _ in range(args.requests):
        frame = read_frame(sock)
        if frame is None:
            fail(f"closed after {len(answers)} answers")
        message = FetchResponse[12].decode(frame[4:], version=12, header=True)
        partition = message.responses[0].partitions[0]
        answers.append(
            {
                "correlation_id": message.header.correlation_id,
                "error_code": partition.error_code,
                "records_bytes": len(partition.records or b""),
                "frame_bytes": len(frame),
            }
        )
    return {"address": address, "buffered_samples": samples, "answers": answers}


def idle(args: Any) -> dict[str, Any]:
    sock = connect(args.bootstrap)
    sock.sendall(api_versions(1))
    if read_frame(sock) is None:
        fail("no ApiVersions answer")
    started = time.monotonic()
    sock.settimeout(args.wait)
    try:
        while sock.recv(1):
            pass
    except TimeoutError:
        return {"closed_after": None}
    return {"closed_after": time.monotonic() - started}


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("mode", choices=["partial", "pipeline", "fetch", "idle"])
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--claimed", type=int, default=100 << 20)
    p.add_argument("--sent", type=int, default=1 << 20)
    p.add_argument("--wait", type=float, default=30.0)
    p.add_argument("--over-key", type=int, default=55)
    p.add_argument("--over-version", type=int, default=2)
    p.add_argument("--topic")
    p.add_argument("--requests", type=int, default=10)
    p.add_argument("--max-bytes", type=int, default=8 << 20)
    p.add_argument("--pause", type=float, default=5.0)
    p.add_argument("--metrics-url")
    p.add_argument("--auth")
    args = p.parse_args()
    return {"partial": partial, "pipeline": pipeline, "fetch": fetch, "idle": idle}[args.mode](args)


if __name__ == "__main__":
    run(main)
