"""
A node's memory under the two hostile-client cases of issue 12, against a
real Kafka broker and a real C{twistd kgateway} node.

    python -m bench.hostile_memory                       # at the default budget (512 MiB)
    python -m bench.hostile_memory --budget-mib 128      # a quicker run
    python -m bench.hostile_memory --cases partial       # one case

C{partial}: 20 connections each send 50 MiB of a frame claiming 100 MiB,
then go silent.  The frame is a SaslAuthenticate request, one the gateway
keeps whole whatever the broker.  (A Produce request is passed on to the
broker as it arrives and costs the gateway a read; against Kafka the
broker's JVM would then hold the 1 GB itself, so it is not run here.)

C{fetch}: 20 clients each pipeline 10 Fetch requests for a partition
holding 64 MiB, and never read.

For each it prints the node's RSS (from /proc) before, at its peak during
the attack, and 1, 3 and 5 s after the clients closed, next to the budget
and what the node says it holds (C{kgateway_buffered_bytes_peak}).
Targets: the peak within the budget + ~100 MB, back to the baseline within
seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness.gateway_process import GatewayProcess
from harness.kafka import KafkaCluster, ensure_kafka_libs

MIB = 1 << 20
CLIENT_ID = b"hostile-bench"


def rss_mb(pid: int) -> float:
    """A process's resident set, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for {pid}")


def header(api_key: int, version: int, correlation_id: int, flexible: bool) -> bytes:
    """A request header: v2 (flexible, with an empty tagged section) or v1."""
    head = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    return head + (b"\x00" if flexible else b"")


def partial_frame(api_key: int, version: int, claimed: int, sent: int) -> bytes:
    """The first C{sent} bytes of a frame whose length prefix claims C{claimed} bytes."""
    head = header(api_key, version, 1, flexible=True)
    if api_key == 0:  # Produce v9: null transactional id, acks=1, timeout
        head += b"\x00" + struct.pack(">hi", 1, 30000)
    body = head + bytes(sent - 4 - len(head))
    return struct.pack(">i", claimed - 4) + body


def fetch_request(correlation_id: int, topic: str) -> bytes:
    """A Fetch v12 request for partition 0 of C{topic} from offset 0, up to 50 MiB."""
    from kafka.protocol.consumer import FetchRequest

    cls = FetchRequest[12]
    topics = cls.FetchTopic
    message = cls(
        replica_id=-1,
        max_wait_ms=100,
        min_bytes=1,
        max_bytes=50 * MIB,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            topics(
                topic=topic,
                partitions=[
                    topics.FetchPartition(
                        partition=0,
                        current_leader_epoch=-1,
                        fetch_offset=0,
                        last_fetched_epoch=-1,
                        log_start_offset=-1,
                        partition_max_bytes=50 * MIB,
                    )
                ],
            )
        ],
        forgotten_topics_data=[],
        rack_id="",
    )
    message.with_header(correlation_id=correlation_id, client_id=CLIENT_ID.decode())
    return bytes(message.encode(header=True, framed=True))


class Sampler:
    """Samples a process's RSS every 0.2 s in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss_mb(self.pid)))
            time.sleep(0.2)

    def peak(self, since: float, until: float) -> float:
        return max(mb for t, mb in self.samples if since <= t <= until)

    def at(self, moment: float) -> float:
        return min(self.samples, key=lambda sample: abs(sample[0] - moment))[1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def send_partials(
    host: str, port: int, frame: bytes, count: int, seconds: float
) -> list[asyncio.StreamWriter]:
    """C{count} connections that send C{frame} (as much as the node reads within C{seconds})."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection(host, port)
        writer.transport.set_write_buffer_limits(high=4 * MIB)
        writers.append(writer)
    for writer in writers:
        writer.write(frame)
    try:
        await asyncio.wait_for(asyncio.gather(*(w.drain() for w in writers)), seconds)
    except TimeoutError:
        pass  # the node stopped reading from some: that is the budget at work
    return writers


def fetching_sockets(host: str, port: int, topic: str, count: int) -> list[socket.socket]:
    """C{count} clients that pipeline 10 Fetch requests each and never read."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect((host, port))
        sock.sendall(b"".join(fetch_request(cid, topic) for cid in range(10)))
        sockets.append(sock)
    return sockets


def metric(node: GatewayProcess, name: str) -> float:
    """One sample of the node's /metrics (C{name} with its labels, as the exposition has it)."""
    status, text = node.api("GET", "/metrics")
    for line in str(text).splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise RuntimeError(f"{name} not in /metrics ({status})")


def report(
    title: str,
    sampler: Sampler,
    node: GatewayProcess,
    attack: Callable[[], Callable[[], None]],
    hold: float,
) -> None:
    """Run C{attack} (which returns how to end it), hold, end it; print the figures."""
    time.sleep(1.0)
    baseline = sampler.at(time.monotonic())
    to_client = 'kgateway_bytes_total{direction="to_client"}'
    sent_before = metric(node, to_client)
    began = time.monotonic()
    end = attack()
    time.sleep(hold)
    peak_until = time.monotonic()
    held = metric(node, "kgateway_buffered_bytes")
    peak_held = metric(node, "kgateway_buffered_bytes_peak")
    paused = metric(node, "kgateway_connections_paused_for_memory")
    sent = metric(node, to_client) - sent_before
    end()
    closed = time.monotonic()
    time.sleep(5.2)
    peak = sampler.peak(began, peak_until)
    after = [sampler.at(closed + s) for s in (1, 3, 5)]
    print(
        f"{title}: RSS {baseline:.0f} MB before, {peak:.0f} MB at most during "
        f"(+{peak - baseline:.0f} MB), then {after[0]:.0f} / {after[1]:.0f} / {after[2]:.0f} MB "
        f"1 / 3 / 5 s after the clients closed; the node said it held {held / MIB:.0f} MiB "
        f"(peak {peak_held / MIB:.0f} MiB) with {paused:.0f} connections paused, and sent "
        f"{sent / MIB:.0f} MiB to the clients",
        flush=True,
    )


def produce_topic(bootstrap: str, topic: str, mib: int) -> None:
    """Fill partition 0 of C{topic} with C{mib} MiB of 512 KiB records, through the node."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=MIB, batch_size=MIB, linger_ms=5, acks=1
    )
    value = bytes(range(256)) * 2048
    for _ in range(mib * 2):
        producer.send(topic, value)
    producer.flush()
    producer.close()


def main() -> int:
    """Run the cases the arguments name and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-mib", type=int, default=512, help="GATEWAY_MAX_BUFFERED_BYTES")
    parser.add_argument("--cases", default="partial,fetch")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the attack lasts")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    ensure_kafka_libs()
    workdir = Path(tempfile.mkdtemp(prefix="kgateway-hostile-"))
    cluster = KafkaCluster(size=1, base_dir=workdir / "kafka", racks=("a",))
    cluster.start()
    node = GatewayProcess(
        cluster.bootstrap_servers,
        workdir / "gateway.log",
        env={"GATEWAY_MAX_BUFFERED_BYTES": str(args.budget_mib * MIB)},
    )
    try:
        node.start(timeout=90)
        pid = node.pid
        assert pid is not None
        sampler = Sampler(pid)
        host, port = "127.0.0.1", node.port_for(1)
        print(
            f"budget {args.budget_mib} MiB (GATEWAY_MAX_BUFFERED_BYTES); "
            f"{args.connections} connections per case",
            flush=True,
        )
        if "partial" in cases:
            frame = partial_frame(36, 2, claimed=100 * MIB, sent=50 * MIB)

            def partials() -> Callable[[], None]:
                loop = asyncio.new_event_loop()
                writers = loop.run_until_complete(
                    send_partials(host, port, frame, args.connections, args.hold)
                )

                def end() -> None:
                    for writer in writers:
                        writer.transport.abort()
                    loop.run_until_complete(asyncio.sleep(0.1))
                    loop.close()

                return end

            report(
                "partial SaslAuthenticate frames (kept whole)",
                sampler,
                node,
                partials,
                args.hold,
            )
        if "fetch" in cases:
            topic = "hostile-fetch"
            produce_topic(node.bootstrap, topic, 64)

            def fetchers() -> Callable[[], None]:
                sockets = fetching_sockets(host, port, topic, args.connections)

                def end() -> None:
                    for sock in sockets:
                        sock.close()

                return end

            report("non-reading Fetch clients", sampler, node, fetchers, args.hold)
        sampler.stop()
    finally:
        node.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
