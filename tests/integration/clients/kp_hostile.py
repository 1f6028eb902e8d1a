"""
Hostile and careless requests, sent the way a client would, over plain sockets.

    python kp_hostile.py --bootstrap HOST:PORT api-versions --software-name '!!!'
    python kp_hostile.py --bootstrap HOST:PORT metadata-storm --topics 100000
    python kp_hostile.py --bootstrap HOST:PORT api-keys --first 0 --last 32767
    python kp_hostile.py --bootstrap HOST:PORT round-trips --client-id ID --count 50

Requests are encoded with kafka-python's message classes; answers are read
as frames.  Each command prints one JSON object.  The integration tests
(tests/integration/test_hostile_cpu.py) run it under the connect audit, and
the benchmark (bench/hostile_cpu.py) reads the figures it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import threading
import time
from typing import Any

from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest, MetadataResponse

CLIENT_ID = "kgateway-hostile"


def _frame(message: Any, version: int, correlation_id: int, client_id: str = CLIENT_ID) -> bytes:
    message.API_VERSION = version
    message.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(message.encode(header=True, framed=True))


def _read_frame(sock: socket.socket) -> bytes:
    """One whole frame, length prefix included."""
    head = _read_exactly(sock, 4)
    (size,) = struct.unpack(">i", head)
    return head + _read_exactly(sock, size)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("the connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _connect(bootstrap: str, timeout: float = 60.0) -> socket.socket:
    host, _, port = bootstrap.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def api_versions(args: argparse.Namespace) -> dict[str, Any]:
    """ApiVersions at a version, with a client software name (a bad one gets INVALID_REQUEST)."""
    request = ApiVersionsRequest[args.version](
        client_software_name=args.software_name, client_software_version="1.0"
    )
    with _connect(args.bootstrap) as sock:
        sock.sendall(_frame(request, args.version, 7))
        try:
            answer = _read_frame(sock)
        except (ConnectionError, OSError) as e:
            return {"answered": False, "error": str(e)}
    (correlation_id, error_code) = struct.unpack_from(">ih", answer, 4)
    return {
        "answered": True,
        "correlation_id": correlation_id,
        "error_code": error_code,
        "body_hex": answer[8:].hex(),
    }


#: ApiVersions versions for the bystander: v0 goes to the broker and back; a version
#: above what anyone offers is answered UNSUPPORTED_VERSION by the gateway itself, so
#: its round trip measures the gateway's event loop alone.
PROBES = {"broker": 0, "gateway": 127}


class Bystander(threading.Thread):
    """Round-trips ApiVersions on its own connection, keeping each round trip's time."""

    def __init__(self, bootstrap: str, probe: str = "broker") -> None:
        super().__init__(daemon=True)
        self.version = PROBES[probe]
        self.sock = _connect(bootstrap)
        self.stop = threading.Event()
        self.trips: list[tuple[float, float]] = []  # (started at, seconds)
        self.failure: str | None = None

    def _request(self, correlation_id: int) -> bytes:
        if self.version == 0:
            return _frame(ApiVersionsRequest[0](), 0, correlation_id)
        # Header only: kafka-python cannot encode a version it does not know.
        client_id = CLIENT_ID.encode()
        body = struct.pack(">hhih", 18, self.version, correlation_id, len(client_id)) + client_id
        return struct.pack(">i", len(body)) + body

    def run(self) -> None:
        correlation_id = 0
        try:
            while not self.stop.is_set():
                correlation_id += 1
                began = time.monotonic()
                self.sock.sendall(self._request(correlation_id))
                answer = _read_frame(self.sock)
                self.trips.append((began, time.monotonic() - began))
                if struct.unpack_from(">i", answer, 4)[0] != correlation_id:
                    raise RuntimeError("an answer out of order")
                time.sleep(0.002)
        except Exception as e:
            self.failure = f"{type(e).__name__}: {e}"
        finally:
            self.sock.close()


def metadata_storm(args: argparse.Namespace) -> dict[str, Any]:
    """A Metadata request naming many topics, while a bystander round-trips."""
    names = [f"hostile-missing-{i:06d}" for i in range(args.topics)]
    version = 12
    cls = MetadataRequest[version]
    request = cls(
        topics=[cls.MetadataRequestTopic(topic_id=None, name=name) for name in names],
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    frame = _frame(request, version, 99)
    bystander = Bystander(args.bootstrap, args.probe) if args.probe != "none" else None
    if bystander is not None:
        bystander.start()
        time.sleep(0.3)
    with _connect(args.bootstrap, timeout=120) as sock:
        sent_at = time.monotonic()
        sock.sendall(frame)
        answer = _read_frame(sock)
        answered_at = time.monotonic()
    trips: list[tuple[float, float]] = []
    if bystander is not None:
        time.sleep(0.3)
        bystander.stop.set()
        bystander.join(10)
        trips = bystander.trips
    during = [s for began, s in trips if sent_at - 0.05 <= began <= answered_at]
    response = MetadataResponse.decode(answer[4:], version=version, header=True)
    errors: dict[int, int] = {}
    for topic in response.topics:
        errors[topic.error_code] = errors.get(topic.error_code, 0) + 1
    return {
        "request_bytes": len(frame),
        "response_bytes": len(answer),
        "seconds": answered_at - sent_at,
        "correlation_id": response.header.correlation_id,
        "topics": len(response.topics),
        "names_match": sorted(t.name for t in response.topics) == names,
        "topic_errors": {str(k): v for k, v in sorted(errors.items())},
        "brokers": [[b.node_id, b.host, b.port] for b in response.brokers],
        "bystander_trips": len(trips),
        "bystander_trips_during": len(during),
        "bystander_max_ms_during": max(during, default=0.0) * 1000,
        "bystander_max_ms": max((s for _, s in trips), default=0.0) * 1000,
        "bystander_failure": bystander.failure if bystander is not None else None,
    }


async def _one_key(host: str, port: int, api_key: int, gate: asyncio.Semaphore) -> bool:
    # A header-only request (request header v1, no body): what a fuzzer sends.
    client_id = CLIENT_ID.encode()
    body = struct.pack(">hhih", api_key, 0, api_key, len(client_id)) + client_id
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (TimeoutError, OSError):
            return False
        try:
            writer.write(struct.pack(">i", len(body)) + body)
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(65536), 2)
            except TimeoutError:
                pass
            return True
        except OSError:
            return True
        finally:
            writer.close()


async def _all_keys(args: argparse.Namespace) -> int:
    host, _, port = args.bootstrap.rpartition(":")
    gate = asyncio.Semaphore(args.concurrency)
    sent = await asyncio.gather(
        *(_one_key(host, int(port), key, gate) for key in range(args.first, args.last + 1))
    )
    return sum(sent)


def api_keys(args: argparse.Namespace) -> dict[str, Any]:
    """One header-only request for each API key in a range, each on its own connection."""
    began = time.monotonic()
    sent = asyncio.run(_all_keys(args))
    return {"sent": sent, "seconds": time.monotonic() - began}


def round_trips(args: argparse.Namespace) -> dict[str, Any]:
    """Metadata (no topics) round trips with a given client id; each one's time."""
    version = 12
    cls = MetadataRequest[version]
    times = []
    with _connect(args.bootstrap) as sock:
        for correlation_id in range(1, args.count + 1):
            request = cls(
                topics=[],
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            )
            began = time.monotonic()
            sock.sendall(_frame(request, version, correlation_id, args.client_id))
            answer = _read_frame(sock)
            times.append(time.monotonic() - began)
            if struct.unpack_from(">i", answer, 4)[0] != correlation_id:
                raise RuntimeError("an answer out of order")
    times.sort()
    return {
        "count": len(times),
        "median_ms": times[len(times) // 2] * 1000,
        "max_ms": times[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    versions = commands.add_parser("api-versions")
    versions.add_argument("--version", type=int, default=3)
    versions.add_argument("--software-name", default="!!!")
    storm = commands.add_parser("metadata-storm")
    storm.add_argument("--topics", type=int, default=100_000)
    storm.add_argument("--probe", choices=[*sorted(PROBES), "none"], default="broker")
    keys = commands.add_parser("api-keys")
    keys.add_argument("--first", type=int, default=0)
    keys.add_argument("--last", type=int, default=32767)
    keys.add_argument("--concurrency", type=int, default=200)
    trips = commands.add_parser("round-trips")
    trips.add_argument("--client-id", default=CLIENT_ID)
    trips.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    command = {
        "api-versions": api_versions,
        "metadata-storm": metadata_storm,
        "api-keys": api_keys,
        "round-trips": round_trips,
    }[args.command]
    print(json.dumps(command(args)), flush=True)


if __name__ == "__main__":
    main()
