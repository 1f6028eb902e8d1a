"""
A micro-benchmark of the relay alone, no Kafka needed: a fake broker, one
gateway node's client/broker legs on the real epoll reactor, and a client,
each in its own process on loopback.

    PYTHONPATH=$PWD python3 -m bench.relay_loopback fetch --mib 1024
    PYTHONPATH=$PWD python3 -m bench.relay_loopback produce --requests 50000

``fetch`` sends one Fetch v16 request at a time and reads the whole answer (a
multi-MiB response, as a consumer's fetch of several full partitions is);
``produce`` keeps ``--in-flight`` small Produce v11 acks=1 requests pipelined.
Each prints the client's throughput and the gateway process's CPU seconds
(utime + stime), which is the figure to compare: it is far less noisy than
wall time on a shared machine.  ``--direct`` runs the client against the fake
broker without the gateway, for the ratio.  ``--profile FILE`` records the
gateway with py-spy (raw, collapsed stacks).
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

_LENGTH = struct.Struct(">i")


def _recv_frame(sock: socket.socket, buffer: bytearray) -> int:
    """Read one frame into C{buffer} (grown as needed); return its size without the prefix."""
    view = memoryview(buffer)
    got = 0
    while got < 4:
        n = sock.recv_into(view[got:4])
        if not n:
            raise ConnectionError("closed")
        got += n
    size: int = _LENGTH.unpack_from(buffer, 0)[0]
    if size + 4 > len(buffer):
        view.release()
        buffer.extend(bytes(size + 4 - len(buffer)))
        view = memoryview(buffer)
    while got < size + 4:
        n = sock.recv_into(view[got : size + 4])
        if not n:
            raise ConnectionError("closed")
        got += n
    return size


def _request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    client_id = b"relay-bench"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + b"\x00" + body  # flexible header: empty tagged fields
    return _LENGTH.pack(len(payload)) + payload


def fetch_request(correlation_id: int) -> bytes:
    """A Fetch v16 request: only its header matters to the gateway and the fake broker."""
    return _request(1, 16, correlation_id, b"\x00" * 40)


def produce_request(correlation_id: int, record_bytes: int) -> bytes:
    """A Produce v11 request, acks=1: header, null transactional id, acks, timeout, filler."""
    body = b"\x00" + struct.pack(">hi", 1, 30000) + b"\x00" * record_bytes
    return _request(0, 11, correlation_id, body)


def fetch_response(partitions: int, partition_bytes: int) -> bytes:
    """A Fetch v16 response without leader hints: the common case a consumer gets."""
    from kafka.protocol.consumer import FetchResponse

    cls = FetchResponse[16]
    topic = cls.FetchableTopicResponse
    partition = topic.PartitionData
    records = bytes(range(256)) * (partition_bytes // 256)
    message = cls(
        throttle_time_ms=0,
        error_code=0,
        session_id=1,
        responses=[
            topic(
                topic_id=uuid.UUID(int=1),
                partitions=[
                    partition(
                        partition_index=index,
                        error_code=0,
                        high_watermark=10**9,
                        last_stable_offset=10**9,
                        log_start_offset=0,
                        aborted_transactions=None,
                        preferred_read_replica=-1,
                        records=records,
                    )
                    for index in range(partitions)
                ],
            )
        ],
    )
    message.API_VERSION = 16
    message.with_header(correlation_id=0)
    return bytes(message.encode(header=True, framed=True))


def produce_response(correlation_id: int) -> bytes:
    """A Produce v11 response for one partition, no leader hints."""
    from kafka.protocol.producer import ProduceResponse

    cls = ProduceResponse[11]
    topic = cls.TopicProduceResponse
    partition = topic.PartitionProduceResponse
    message = cls(
        responses=[
            topic(
                name="bench",
                partition_responses=[
                    partition(index=0, error_code=0, base_offset=1, record_errors=[])
                ],
            )
        ],
        throttle_time_ms=0,
    )
    message.API_VERSION = 11
    message.with_header(correlation_id=correlation_id)
    return bytes(message.encode(header=True, framed=True))


def run_broker(port_file: Path, partitions: int, partition_bytes: int) -> None:
    """The fake broker: answers Fetch with one big response, Produce with a small one."""
    fetch = bytearray(fetch_response(partitions, partition_bytes))
    produce = bytearray(produce_response(0))
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port_file.write_text(str(server.getsockname()[1]))

    def serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray(1 << 16)
        pending = bytearray()
        try:
            while True:
                _recv_frame(conn, buffer)
                (api_key, _, correlation_id) = struct.unpack_from(">hhi", buffer, 4)
                answer = fetch if api_key == 1 else produce
                struct.pack_into(">i", answer, 4, correlation_id)
                pending += answer
                # Answer in batches when requests are pipelined, as a broker's
                # network thread does; flush once nothing more is readable.
                conn.setblocking(False)
                try:
                    more = conn.recv(1, socket.MSG_PEEK)
                except BlockingIOError:
                    more = b""
                conn.setblocking(True)
                if not more:
                    conn.sendall(pending)
                    pending.clear()
        except (ConnectionError, OSError):
            conn.close()

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def _idle_interceptors(reactor: object) -> object:
    """An interceptor set running one interceptor that wants only CreateTopics requests."""
    from zope.interface import implementer

    from kgateway.interceptors.api import IInterceptor, InterceptorContext
    from kgateway.interceptors.plugin import InterceptorPlugin
    from kgateway.interceptors.registry import InterceptorSet
    from kgateway.interceptors.spec import InterceptorSpec

    @implementer(IInterceptor)
    class CreateTopicsOnly:
        requests = frozenset({19})
        responses: frozenset[int] = frozenset()

        def on_request(self, call: object) -> None:
            return None

        def on_response(self, call: object) -> None:
            return None

        def stop(self) -> None:
            pass

    plugin = InterceptorPlugin("idle", "wants CreateTopics only", lambda c, x: CreateTopicsOnly())
    interceptors = InterceptorSet(
        {"idle": plugin},
        lambda name: InterceptorContext(reactor, name),  # type: ignore[arg-type]
    )
    interceptors.apply([InterceptorSpec.parse({"name": "idle", "plugin": "idle"})])
    return interceptors


def _limits(reactor: object) -> dict[str, Any]:
    """The time limits on the reactor, as a node runs them (where this checkout has them)."""
    import inspect

    from kgateway.relay.client_protocol import ClientConnectionFactory

    if "clock" not in inspect.signature(ClientConnectionFactory).parameters:
        return {}
    return {"clock": reactor, "now": time.monotonic}


def run_gateway(port_file: Path, broker_port: int, idle_interceptor: bool = False) -> None:
    """One gateway port relaying to the fake broker, on the epoll reactor, as twistd runs it."""
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.address import IPv4Address
    from twisted.internet.defer import succeed
    from zope.interface import implementer

    from kgateway.net import HostPort, tcp_connector
    from kgateway.relay.client_protocol import ClientConnectionFactory
    from kgateway.routing.mapping import FixedHostMapper
    from kgateway.routing.ports import PortPlan
    from kgateway.routing.router import Accepted, IRouter, Route

    route = Route(0, HostPort("127.0.0.1", broker_port))

    @implementer(IRouter)
    class ToTheBroker:
        """Every connection goes to the fake broker, as broker 0."""

        def route(self, connection: Accepted) -> Any:
            return succeed(route)

    factory = ClientConnectionFactory(
        ToTheBroker(),
        FixedHostMapper("127.0.0.1", PortPlan(start=1, count=1, min_broker_id=0)),
        tcp_connector(reactor, 10.0),
        interceptors=_idle_interceptors(reactor) if idle_interceptor else None,  # type: ignore[arg-type]
        **_limits(reactor),
    )
    address = reactor.listenTCP(0, factory, interface="127.0.0.1").getHost()
    assert isinstance(address, IPv4Address)
    port_file.write_text(str(address.port))
    reactor.run()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(role: list[str], port_file: Path) -> tuple[subprocess.Popen[bytes], int]:
    child = subprocess.Popen([sys.executable, "-m", "bench.relay_loopback", *role])
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return child, int(port_file.read_text())
        time.sleep(0.05)
    child.kill()
    raise SystemExit(f"{role[0]} did not start")


def client_fetch(port: int, mib: int) -> tuple[float, int]:
    """Fetch until C{mib} MiB arrived; return seconds and bytes."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray(1 << 16)
    total = 0
    correlation_id = 0
    start = time.perf_counter()
    while total < mib << 20:
        sock.sendall(fetch_request(correlation_id))
        total += _recv_frame(sock, buffer) + 4
        (got,) = struct.unpack_from(">i", buffer, 4)
        assert got == correlation_id, (got, correlation_id)
        correlation_id += 1
    elapsed = time.perf_counter() - start
    sock.close()
    return elapsed, total


def client_produce(
    port: int, requests: int, in_flight: int, record_bytes: int
) -> tuple[float, int, list[float]]:
    """Send C{requests} Produce requests, C{in_flight} at a time; seconds, bytes, latencies."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray(1 << 16)
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    frames = [produce_request(i, record_bytes) for i in range(requests)]
    start = time.perf_counter()
    next_id = 0
    answered = 0
    while answered < requests:
        burst = []
        while next_id < requests and next_id - answered < in_flight:
            sent_at[next_id] = time.perf_counter()
            burst.append(frames[next_id])
            next_id += 1
        if burst:
            sock.sendall(b"".join(burst))
        _recv_frame(sock, buffer)
        (got,) = struct.unpack_from(">i", buffer, 4)
        latencies.append(time.perf_counter() - sent_at.pop(got))
        answered += 1
    elapsed = time.perf_counter() - start
    sock.close()
    return elapsed, requests * len(frames[0]), latencies


def client_produce_at_rate(
    port: int, requests: int, rate: float, record_bytes: int
) -> tuple[float, int, list[float]]:
    """
    Send C{requests} Produce requests at C{rate} per second, open loop.

    Each latency runs from the moment the request was due, not when it went
    out, so a stall counts for every request it delays (no coordinated omission).
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frames = [produce_request(i, record_bytes) for i in range(requests)]
    due = [0.0] * requests
    latencies: list[float] = []

    def receive() -> None:
        buffer = bytearray(1 << 16)
        for _ in range(requests):
            _recv_frame(sock, buffer)
            (got,) = struct.unpack_from(">i", buffer, 4)
            latencies.append(time.perf_counter() - due[got])

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        due[i] = start + i / rate
        wait = due[i] - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sock.sendall(frame)
    reader.join()
    elapsed = time.perf_counter() - start
    sock.close()
    return elapsed, requests * len(frames[0]), latencies


def main() -> None:
    """Run the benchmark described in the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["fetch", "produce", "broker", "gateway"])
    parser.add_argument("--mib", type=int, default=1024, help="fetch: MiB to move")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--partition-kib", type=int, default=512)
    parser.add_argument("--requests", type=int, default=30000, help="produce: requests")
    parser.add_argument("--in-flight", type=int, default=5)
    parser.add_argument(
        "--rate", type=float, help="produce: requests per second, open loop (instead of in-flight)"
    )
    parser.add_argument("--record-bytes", type=int, default=1024)
    parser.add_argument("--direct", action="store_true", help="no gateway")
    parser.add_argument(
        "--idle-interceptor",
        action="store_true",
        help="the gateway runs an interceptor that wants no produce or fetch traffic",
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw output for the gateway")
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--broker-port", type=int)
    args = parser.parse_args()
    if args.mode == "broker":
        run_broker(args.port_file, args.partitions, args.partition_kib * 1024)
        return
    if args.mode == "gateway":
        run_gateway(args.port_file, args.broker_port, args.idle_interceptor)
        return

    tmp = Path(f"/tmp/relay-bench-{os.getpid()}")
    tmp.mkdir(exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    try:
        broker, broker_port = _start(
            [
                "broker",
                f"--port-file={tmp / 'broker'}",
                f"--partitions={args.partitions}",
                f"--partition-kib={args.partition_kib}",
            ],
            tmp / "broker",
        )
        children.append(broker)
        port, gateway_pid = broker_port, 0
        if not args.direct:
            gateway, port = _start(
                ["gateway", f"--port-file={tmp / 'gateway'}", f"--broker-port={broker_port}"]
                + (["--idle-interceptor"] if args.idle_interceptor else []),
                tmp / "gateway",
            )
            children.append(gateway)
            gateway_pid = gateway.pid
        spy = None
        if args.profile and gateway_pid:
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "--function",
                    "-p",
                    str(gateway_pid),
                    "-o",
                    str(args.profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        cpu_before = _cpu(gateway_pid) if gateway_pid else 0.0
        if args.mode == "fetch":
            elapsed, moved = client_fetch(port, args.mib)
            figure = f"{moved / elapsed / 2**20:.0f} MiB/s"
        else:
            if args.rate:
                elapsed, moved, latencies = client_produce_at_rate(
                    port, args.requests, args.rate, args.record_bytes
                )
            else:
                elapsed, moved, latencies = client_produce(
                    port, args.requests, args.in_flight, args.record_bytes
                )
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1e3
            p99 = latencies[int(len(latencies) * 0.99)] * 1e3
            p999 = latencies[int(len(latencies) * 0.999)] * 1e3
            figure = (
                f"{args.requests / elapsed:.0f} requests/s, p50 {p50:.3f} ms, "
                f"p99 {p99:.3f} ms, p99.9 {p999:.3f} ms"
            )
        cpu = (_cpu(gateway_pid) - cpu_before) if gateway_pid else 0.0
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        target = "direct" if args.direct else "gateway"
        per_gib = cpu / (moved / 2**30)
        per_request = cpu / args.requests * 1e6 if args.mode == "produce" else 0.0
        print(
            f"{args.mode} {target}: {figure}; {moved / 2**20:.0f} MiB in {elapsed:.2f} s; "
            f"gateway CPU {cpu:.2f} s = {per_gib:.2f} s/GiB"
            + (f", {per_request:.0f} µs/request" if per_request else ""),
            flush=True,
        )
    finally:
        for child in children:
            child.kill()
            child.wait()
        for name in ("broker", "gateway"):
            (tmp / name).unlink(missing_ok=True)
        tmp.rmdir()


if __name__ == "__main__":
    main()
