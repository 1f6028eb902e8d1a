"""
Open many idle Kafka client connections to a proxy, from a process of their own.

    python bench/idle_clients.py --host 127.0.0.1 --ports 20001,20002,20003 --count 10000

Each connection sends one ApiVersions v0 request and waits for its answer
(so the proxy has accepted it and opened its broker side), then stays idle.
Connections are spread round-robin over the ports, at most ``--concurrency``
being set up at once (a listen backlog overflow would otherwise add the
kernel's 1 s SYN retry to the figure). When all are answered the script
prints one JSON line and waits for a line on stdin before closing them all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import struct
import sys
import time

API_VERSIONS = 18
CLIENT_ID = b"kgateway-bench-idle"


def api_versions_v0(correlation_id: int) -> bytes:
    """A framed ApiVersions v0 request (request header v1, empty body)."""
    body = struct.pack(">hhih", API_VERSIONS, 0, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    return struct.pack(">i", len(body)) + body


async def open_one(
    host: str, port: int, index: int, gate: asyncio.Semaphore
) -> tuple[asyncio.StreamWriter, float]:
    async with gate:
        began = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(api_versions_v0(index))
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        answer = await reader.readexactly(size)
        (correlation_id, error_code) = struct.unpack_from(">ih", answer)
        if correlation_id != index or error_code != 0:
            raise RuntimeError(f"ApiVersions answer {correlation_id}/{error_code} for {index}")
        return writer, time.perf_counter() - began


async def run(args: argparse.Namespace) -> None:
    ports = [int(p) for p in args.ports.split(",")]
    gate = asyncio.Semaphore(args.concurrency)
    started = time.perf_counter()
    results = await asyncio.wait_for(
        asyncio.gather(
            *(open_one(args.host, ports[i % len(ports)], i, gate) for i in range(args.count))
        ),
        args.timeout,
    )
    elapsed = time.perf_counter() - started
    setup = sorted(seconds for _, seconds in results)
    print(
        json.dumps(
            {
                "connections": len(results),
                "seconds": elapsed,
                "per_second": len(results) / elapsed,
                "setup_p50_ms": setup[len(setup) // 2] * 1000,
                "setup_p99_ms": setup[int(0.99 * (len(setup) - 1))] * 1000,
            }
        ),
        flush=True,
    )
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for writer, _ in results:
        writer.close()
    await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", required=True, help="comma-separated proxy ports")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to open them all")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.count + 1000), hard))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
