"""
The benchmark cases, and one audited run of a case against a target.

A run starts the client as its own process under C{strace --seccomp-bpf -f -e
trace=connect} (so only connect() stops the client, and throughput is barely
touched), reads the client's own figures from its output, charges the
target's processes the CPU time they spent, and proves where the traffic went:
a proxy's client must never have connected to a broker or controller port and
must have reached the proxy's ports, and the proxy must have counted the
bytes; a direct client must have reached the brokers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.client_security import ClientSecurity
from harness.connect_audit import (
    assert_never_connected,
    audited_command,
    connected_addresses,
)
from harness.kafka import CONSUMER_PERF, PRODUCER_PERF, java_tool_command

from .machine import load
from .targets import Target

HERE = Path(__file__).resolve().parent
RDKAFKA_CLIENT = HERE / "rdkafka_client.py"
RECORD_SIZE = 1024
GIB = 1024**3
MIB = 1024**2
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Case:
    """One workload: which client, what it does, how much."""

    key: str
    title: str
    client: str  # "java" or "rdkafka"
    kind: str  # "produce", "consume" or "latency" (produce at a fixed rate)
    acks: str = "1"
    records: int = 0
    rate: int = 0


def cases(records: int, latency_records: int, rate: int) -> list[Case]:
    """The cases of a full run, in the order they alternate."""
    result = []
    for client, name in (("java", "Java"), ("rdkafka", "librdkafka")):
        result += [
            Case(
                f"{client}-produce-acks1", f"{name} produce acks=1", client, "produce", "1", records
            ),
            Case(
                f"{client}-produce-acksall",
                f"{name} produce acks=all",
                client,
                "produce",
                "all",
                records,
            ),
            Case(f"{client}-consume", f"{name} consume", client, "consume", "1", records),
            Case(
                f"{client}-latency",
                f"{name} produce acks=1 at {rate}/s",
                client,
                "latency",
                "1",
                latency_records,
                rate,
            ),
        ]
    return result


@dataclass
class RunResult:
    """The figures and the proof of one run."""

    case: str
    target: str
    repetition: int
    load: float
    mb_per_sec: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_seconds: float | None = None
    payload_bytes: int = 0
    wall_seconds: float = 0.0
    proof: str = ""
    error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_per_gib(self) -> float | None:
        """Target CPU seconds per GiB of record payload forwarded."""
        if self.cpu_seconds is None or not self.payload_bytes:
            return None
        return self.cpu_seconds / (self.payload_bytes / GIB)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "cpu_per_gib": self.cpu_per_gib}


@dataclass
class Context:
    """What every run needs to know about the environment."""

    workdir: Path
    forbidden_ports: set[int]
    broker_ports: set[int]
    consume_topic: str
    produce_topic: str = ""
    timeout: float = 600.0


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of the processes, from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def _strace(command: list[str], trace: Path) -> list[str]:
    wrapped = audited_command(command, trace)
    # seccomp-bpf: only connect() stops the client; without it every syscall would.
    return [wrapped[0], "--seccomp-bpf", *wrapped[1:]]


def client_command(
    case: Case,
    bootstrap: str,
    ctx: Context,
    records: int | None = None,
    security: ClientSecurity | None = None,
) -> list[str]:
    """The client's argv for one run of C{case} against C{bootstrap}; C{security}: how it
    connects (TLS), plaintext without."""
    count = str(records or case.records)
    group = f"bench-{uuid.uuid4().hex[:10]}"
    config: list[str] = []
    if case.client == "java" and security is not None:
        path = ctx.workdir / "client-config" / f"{uuid.uuid4().hex[:10]}.properties"
        flag = "--consumer.config" if case.kind == "consume" else "--producer.config"
        config = [flag, str(security.write_java_properties(path))]
    elif security is not None:
        config = [
            arg
            for key, value in security.rdkafka_config().items()
            for arg in ("--config", f"{key}={value}")
        ]
    if case.client == "java":
        if case.kind == "consume":
            return java_tool_command(
                CONSUMER_PERF,
                "--bootstrap-server",
                bootstrap,
                "--topic",
                ctx.consume_topic,
                "--messages",
                count,
                "--group",
                group,
                "--timeout",
                "120000",
                "--hide-header",
                *config,
            )
        props = [f"bootstrap.servers={bootstrap}", f"acks={case.acks}", "client.id=kgateway-bench"]
        if case.kind == "latency":
            props.append("linger.ms=0")
        return java_tool_command(
            PRODUCER_PERF,
            "--topic",
            ctx.produce_topic,
            "--num-records",
            count,
            "--record-size",
            str(RECORD_SIZE),
            "--throughput",
            str(case.rate if case.kind == "latency" else -1),
            *config,
            "--producer-props",
            *props,
        )
    command = [
        sys.executable,
        str(RDKAFKA_CLIENT),
        case.kind if case.kind == "consume" else "produce",
    ]
    command += ["--bootstrap", bootstrap, "--records", count, "--record-size", str(RECORD_SIZE)]
    command += config
    if case.kind == "consume":
        return command + ["--topic", ctx.consume_topic, "--group", group]
    command += ["--topic", ctx.produce_topic, "--acks", case.acks]
    if case.kind == "latency":
        command += ["--rate", str(case.rate), "--linger-ms", "0"]
    return command


_PRODUCER_PERF = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th"
)


def parse_output(case: Case, stdout: str, result: RunResult) -> None:
    """Fill C{result} with the client's own figures."""
    if case.client == "rdkafka":
        import json

        figures = json.loads(stdout.strip().splitlines()[-1])
        result.mb_per_sec = figures["mb_per_sec"]
        latency = figures.get("latency_ms")
        if latency:
            result.p50_ms = latency["p50"]
            result.p99_ms = latency["p99"]
            result.extra["p999_ms"] = latency["p999"]
        return
    if case.kind == "consume":
        for line in reversed(stdout.splitlines()):
            parts = [part.strip() for part in line.split(",")]
            if len(parts) == 10:
                # start, end, MB, MB/s, nMsg, nMsg/s, rebalance ms, fetch ms, fetch MB/s, ...
                if int(parts[4]) < case.records:
                    raise RuntimeError(f"consumed only {parts[4]} of {case.records} records")
                result.mb_per_sec = float(parts[8])
                result.extra["rebalance_ms"] = float(parts[6])
                return
        raise RuntimeError(f"no ConsumerPerformance summary in:\n{stdout[-1500:]}")
    matches = _PRODUCER_PERF.findall(stdout)
    if not matches:
        raise RuntimeError(f"no ProducerPerformance summary in:\n{stdout[-1500:]}")
    sent, _, mb, _, _, p50, _, p99, p999 = matches[-1]
    if int(sent) < case.records:
        raise RuntimeError(f"sent only {sent} of {case.records} records")
    result.mb_per_sec = float(mb)
    result.p50_ms = float(p50)
    result.p99_ms = float(p99)
    result.extra["p999_ms"] = float(p999)


def _prove(
    case: Case,
    target: Target,
    ctx: Context,
    trace: Path,
    before: tuple[int, int] | None,
    payload: int,
    requests_before: int | None = None,
) -> str:
    """Check where the client connected and what the target counted; return the evidence."""
    reached = sorted({port for _, port in connected_addresses(trace)})
    if not target.is_proxy:
        if not set(reached) & ctx.broker_ports:
            raise AssertionError(f"the direct client never reached a broker port: {reached}")
        return f"strace: brokers reached directly ({', '.join(map(str, reached))})"
    calls = assert_never_connected(trace, ctx.forbidden_ports)
    if not set(reached) & target.client_ports:
        raise AssertionError(f"the client never connected to a {target.title} port: {reached}")
    evidence = (
        f"strace: {len(calls)} connect() calls, none to a broker/controller port; "
        f"reached {', '.join(map(str, reached))}"
    )
    if before is None:
        if requests_before is None:
            return evidence
        requests = (target.requests_counted() or 0) - requests_before
        if requests <= 0:
            raise AssertionError(f"{target.title} counted no client requests during the run")
        return evidence + f"; {target.title} counted {requests} client requests"
    upstream = case.kind != "consume"
    deadline = time.monotonic() + 10
    moved = 0
    while True:
        after = target.bytes_moved()
        if after is not None:
            moved = after[0] - before[0] if upstream else after[1] - before[1]
        if moved >= payload or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    direction = "client→Kafka" if upstream else "Kafka→client"
    if moved < payload:
        raise AssertionError(
            f"{target.title} accounted for only {moved} bytes {direction}, "
            f"less than the {payload} bytes of records"
        )
    return evidence + f"; {target.title} counted {moved / MIB:.1f} MiB {direction}"


def run(
    case: Case, target: Target, ctx: Context, repetition: int, records: int | None = None
) -> RunResult:
    """One audited run of C{case} against C{target}."""
    count = records or case.records
    result = RunResult(case.key, target.key, repetition, load(), payload_bytes=count * RECORD_SIZE)
    trace = (
        ctx.workdir
        / "traces"
        / f"{case.key}-{target.key}-{repetition}-{uuid.uuid4().hex[:6]}.strace"
    )
    trace.parent.mkdir(parents=True, exist_ok=True)
    command = _strace(client_command(case, target.bootstrap, ctx, count, target.security), trace)
    bytes_before = target.bytes_moved()
    requests_before = target.requests_counted()
    pids = target.pids()
    cpu_before = cpu_seconds(pids)
    started = time.monotonic()
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=ctx.timeout, stdin=subprocess.DEVNULL
        )
        result.wall_seconds = time.monotonic() - started
        if pids:
            result.cpu_seconds = cpu_seconds(pids) - cpu_before
        if completed.returncode != 0:
            raise RuntimeError(
                f"client exited with {completed.returncode}: {completed.stderr.strip()[-1500:]}"
            )
        parse_output(case, completed.stdout, result)
        result.proof = _prove(
            case, target, ctx, trace, bytes_before, result.payload_bytes, requests_before
        )
    except (AssertionError, RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        result.error = f"{type(e).__name__}: {e}"
    return result
