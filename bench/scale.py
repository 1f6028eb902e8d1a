"""
Connection scale: many idle clients on one proxy process, from a separate
process (C{idle_clients.py}, under strace like every other client).

Measures the proxy's resident memory per idle client connection (VmRSS
before and after, divided by the count), its open file descriptors (a
kgateway node holds one client and one broker socket per connection), and
how long it took to accept them all and answer each one's ApiVersions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.connect_audit import assert_never_connected, connected_addresses

from .targets import Target
from .workloads import _strace

IDLE_CLIENTS = Path(__file__).resolve().parent / "idle_clients.py"


@dataclass
class ScaleResult:
    """What N idle connections cost one proxy process."""

    target: str
    connections: int
    seconds: float | None = None
    per_second: float | None = None
    setup_p99_ms: float | None = None
    rss_before_kib: int | None = None
    rss_after_kib: int | None = None
    fds_before: int | None = None
    fds_after: int | None = None
    proof: str = ""
    error: str | None = None

    @property
    def kib_per_connection(self) -> float | None:
        if self.rss_before_kib is None or self.rss_after_kib is None or not self.connections:
            return None
        return (self.rss_after_kib - self.rss_before_kib) / self.connections


def rss_kib(pid: int) -> int:
    """The process's resident set size (VmRSS) in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    """How many file descriptors the process holds."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def measure(
    target: Target,
    ports: list[int],
    count: int,
    workdir: Path,
    forbidden_ports: set[int],
    settle: float = 2.0,
) -> ScaleResult:
    """Open C{count} idle connections spread over C{ports} and weigh the proxy process."""
    result = ScaleResult(target.key, count)
    (pid,) = target.pids()[:1]
    time.sleep(settle)
    result.rss_before_kib = rss_kib(pid)
    result.fds_before = open_fds(pid)
    trace = workdir / "traces" / f"idle-{target.key}.strace"
    trace.parent.mkdir(parents=True, exist_ok=True)
    command = _strace(
        [
            sys.executable,
            str(IDLE_CLIENTS),
            "--ports",
            ",".join(map(str, ports)),
            "--count",
            str(count),
        ],
        trace,
    )
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            stderr = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"idle clients failed: {stderr.strip()[-1500:]}")
        figures = json.loads(line)
        result.seconds = figures["seconds"]
        result.per_second = figures["per_second"]
        result.setup_p99_ms = figures["setup_p99_ms"]
        time.sleep(settle)
        result.rss_after_kib = rss_kib(pid)
        result.fds_after = open_fds(pid)
        assert process.stdin is not None
        process.stdin.write("\n")
        process.stdin.flush()
        process.wait(120)
        calls = assert_never_connected(trace, forbidden_ports)
        reached = {port for _, port in connected_addresses(trace)}
        if not reached <= set(ports):
            raise AssertionError(f"idle clients reached ports outside {ports}: {sorted(reached)}")
        result.proof = (
            f"strace: {len(calls)} connect() calls, all to {target.title} ports "
            f"{', '.join(map(str, sorted(reached)))}; its descriptors went from "
            f"{result.fds_before} to {result.fds_after}"
        )
    except (AssertionError, RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
        result.error = f"{type(e).__name__}: {e}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return result
