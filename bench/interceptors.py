"""
C{python -m bench --interceptors}: what interceptors cost on the produce path.

Produce throughput (librdkafka and Kafka's Java ProducerPerformance, acks=1)
direct to a real 3-broker Kafka cluster and through one kgateway node in
each of these configurations, alternating within every repetition:

- C{none}: no interceptor configured (the relay as it was before interceptors);
- C{idle}: an interceptor that wants no produce request (C{bench-idle}, which
  wants CreateTopics only): produce must stay on the zero-decode path;
- C{guard}: C{topic-prefix-guard} (the packaged example plugin), which
  decodes every Produce request to read its topic names and sends the
  original bytes on;
- C{reencode}: C{bench-reencode}, which decodes every Produce request and
  marks it changed, so the gateway encodes it again (what an interceptor that
  edits records or headers costs).

Writes C{bench/interceptors.json} and its own section of C{bench/RESULTS.md}
(between markers; the rest of the file is left as it is).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import REPO_ROOT
from harness.gateway_process import GatewayProcess
from harness.kafka import KafkaCluster

from . import machine
from .sections import fmt, median, write_section
from .targets import Direct, KGateway, Target
from .workloads import Case, Context, RunResult, run

HERE = Path(__file__).resolve().parent
#: Where the nodes find the benchmark's plugins and the packaged example.
PLUGIN_PATHS = (HERE / "plugins", REPO_ROOT / "tests" / "example_plugin")
BEGIN = "<!-- interceptors:begin (python -m bench --interceptors) -->"
END = "<!-- interceptors:end -->"


@dataclass(frozen=True)
class Configuration:
    """One set of interceptors on a node."""

    key: str
    title: str
    specs: tuple[dict[str, Any], ...]
    #: A line the node must log, proving the interceptor really ran on produce traffic.
    proof: str | None = None


CONFIGURATIONS = (
    Configuration("none", "no interceptor", ()),
    Configuration(
        "idle",
        "an interceptor that wants no produce (bench-idle)",
        ({"name": "idle", "plugin": "bench-idle"},),
    ),
    Configuration(
        "guard",
        "topic-prefix-guard: decode every produce, send the original bytes",
        (
            {
                "name": "guard",
                "plugin": "topic-prefix-guard",
                "config": {"prefixes": ["bench-"]},
            },
        ),
    ),
    Configuration(
        "reencode",
        "bench-reencode: decode and re-encode every produce",
        ({"name": "reencode", "plugin": "bench-reencode"},),
        proof="bench-reencode reencode: re-encoding Produce",
    ),
    # The built-in that rewrites record batches (branch ic-records); measured where installed.
    Configuration(
        "headers",
        "header-injection: add a record header to every record produced",
        (
            {
                "name": "headers",
                "plugin": "header-injection",
                "config": {"headers": {"x-client": "{clientId}"}},
            },
        ),
    ),
)


def available(configurations: Sequence[Configuration]) -> tuple[list[Configuration], list[str]]:
    """The configurations whose plugins a node would find, and notes on the ones left out."""
    # Asked of a fresh Python with the nodes' path, so it finds exactly what they will.
    probe = (
        "import json\n"
        "from kgateway.interceptors.registry import discover_plugins\n"
        "print(json.dumps(sorted(discover_plugins())))\n"
    )
    path = os.pathsep.join([str(REPO_ROOT), *map(str, PLUGIN_PATHS)])
    found = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    installed = set(json.loads(found.stdout.splitlines()[-1]))
    kept, notes = [], []
    for config in configurations:
        missing = sorted({spec["plugin"] for spec in config.specs} - set(installed))
        if missing:
            notes.append(f"`{config.key}` left out: no {', '.join(missing)} plugin in this tree")
        else:
            kept.append(config)
    return kept, notes


def _admin_call(node: GatewayProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One admin API call as the node's admin user; status 0 while it does not listen yet."""
    try:
        return node.api(method, path, body)
    except OSError as e:
        return 0, {"error": str(e)}


class InterceptedNode(KGateway):
    """One kgateway node running a L{Configuration}'s interceptors, configured through its API."""

    def __init__(
        self, bootstrap_servers: str, workdir: Path, min_broker_id: int, config: Configuration
    ) -> None:
        self.config = config
        self.key = f"kgateway-{config.key}"
        self.title = f"kgateway ×1, {config.title}"
        self.nodes = [
            GatewayProcess(
                bootstrap_servers,
                workdir / self.key / "node.log",
                min_broker_id=min_broker_id,
                env={
                    "GATEWAY_CLUSTER_ID": f"bench-{config.key}-{uuid.uuid4().hex[:8]}",
                },
                extra_pythonpath=PLUGIN_PATHS,
            )
        ]

    def start(self, timeout: float = 90.0) -> None:
        """Start the node, then configure its interceptors the way an operator would (PUT)."""
        super().start(timeout)
        node = self.nodes[0]
        deadline = time.monotonic() + timeout
        while _admin_call(node, "GET", "/api/v1/plugins")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.title}: no interceptor API:\n{node.log_tail(20)}")
            time.sleep(0.5)
        for spec in self.config.specs:
            path = f"/api/v1/interceptors/{spec['name']}"
            while (answered := _admin_call(node, "PUT", path, spec))[0] not in (200, 201):
                # 503: a new gateway cluster's interceptors topic may have no leader yet.
                if answered[0] != 503 or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.title}: PUT {path}: {answered}")
                time.sleep(0.5)
        # Every node applies what its interceptors topic holds: wait until this one runs them.
        wanted = {spec["name"] for spec in self.config.specs}
        while True:
            status, listing = _admin_call(node, "GET", "/api/v1/interceptors")
            running = {spec["name"] for spec in listing.get("interceptors", [])} - set(
                listing.get("failed", {})
            )
            if status == 200 and running == wanted:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.title}: interceptors {listing} instead of {wanted}")
            time.sleep(0.5)

    def check_proof(self) -> str:
        """The node's log shows the interceptor at work (or there is nothing to show)."""
        if self.config.proof is None:
            return ""
        if self.config.proof not in self.nodes[0].log_path.read_text(errors="replace"):
            raise RuntimeError(f"{self.title}: no {self.config.proof!r} in its log")
        return f"log: {self.config.proof!r}"


def _cases(records: int) -> list[Case]:
    return [
        Case(key, title, client, "produce", "1", records)
        for key, title, client in (
            ("rdkafka-produce-acks1", "librdkafka produce acks=1", "rdkafka"),
            ("java-produce-acks1", "Java produce acks=1", "java"),
        )
    ]


def main(args: argparse.Namespace) -> int:
    """Run the interceptor benchmark with the bench CLI's arguments."""
    from .cli import _describe, _log, create_topic, delete_topic, kafka_under_test

    repetitions = args.repetitions if args.repetitions is not None else 3
    records = args.records if args.records is not None else 30_000
    if args.smoke:
        repetitions, records = 1, 2000
    out = args.out or (
        Path(tempfile.gettempdir()) / "kgateway-bench-ic-smoke" if args.smoke else HERE
    )
    workdir = Path(tempfile.mkdtemp(prefix="kgateway-bench-ic-"))
    cases = _cases(records)
    if args.cases:
        cases = [c for c in cases if c.key in set(args.cases.split(","))]
    loads = [machine.load()]
    runs: list[RunResult] = []
    proofs: dict[str, str] = {}
    notes: list[str] = []
    cluster: KafkaCluster | None = None
    targets: list[Target] = []
    failed = True
    try:
        kafka = kafka_under_test(args, workdir)
        cluster = kafka.cluster
        bootstrap, brokers, broker_ports = kafka.bootstrap, kafka.brokers, kafka.broker_ports
        extra_forbidden, admin, replication = kafka.extra_forbidden, kafka.admin, kafka.replication
        ctx = Context(workdir, broker_ports | extra_forbidden, broker_ports, consume_topic="")
        targets.append(Direct(bootstrap, broker_ports))
        configurations, notes = available(CONFIGURATIONS)
        for note in notes:
            _log(note)
        for config in configurations:
            _log(f"starting kgateway with {config.title}")
            node = InterceptedNode(bootstrap, workdir, min(brokers), config)
            targets.append(node)
            node.start()
        warm = Case("warm-up", "warm-up", "rdkafka", "produce", "1", 500)
        for repetition in range(repetitions):
            ctx.produce_topic = f"bench-ic-{repetition}-{uuid.uuid4().hex[:8]}"
            create_topic(admin, ctx.produce_topic, 3, replication)
            if repetition == 0:
                for target in targets:
                    warmed = run(warm, target, ctx, 0)
                    if warmed.error:
                        raise RuntimeError(f"warm-up via {target.key} failed: {warmed.error}")
            for index, case in enumerate(cases):
                shift = (repetition + index) % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    outcome = run(case, target, ctx, repetition)
                    runs.append(outcome)
                    _log(
                        f"[{repetition + 1}/{repetitions}] {case.key} via {target.key}: "
                        f"{_describe(outcome)}"
                    )
            delete_topic(admin, ctx.produce_topic)
        for target in targets:
            if isinstance(target, InterceptedNode):
                proofs[target.key] = target.check_proof()
        failed = any(r.error for r in runs)
    finally:
        loads.append(machine.load())
        for target in targets:
            with contextlib.suppress(Exception):
                target.stop()
        if cluster is not None:
            cluster.stop()
        if runs:
            command = "python -m bench " + " ".join(sys.argv[1:])
            path = write(out, command.strip(), cases, targets, runs, loads, proofs, records, notes)
            _log(f"results in {path}")
        if failed:
            _log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def section(
    command: str,
    cases: Sequence[Case],
    targets: Sequence[Target],
    runs: Sequence[RunResult],
    loads: Sequence[float],
    proofs: dict[str, str],
    records: int,
    notes: Sequence[str] = (),
) -> str:
    """The RESULTS.md section: medians, ratios to direct and to no interceptor, proof."""
    run_loads = [r.load for r in runs]
    repetitions = len({r.repetition for r in runs})
    lines = [
        BEGIN,
        "## What interceptors cost (produce through one node)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `{command}`: {records:,} records "
        f"of 1 KiB per run, acks=1, {repetitions} repetition(s), targets alternating within "
        "each repetition; medians. One kgateway node per configuration, all in front of the "
        "same real 3-broker cluster. `guard` is the packaged example plugin "
        "(`tests/example_plugin`), decoding every Produce request and sending the original "
        "bytes on; `reencode` decodes and re-encodes every Produce request (the request, not "
        "its record batches); `headers` is the built-in `header-injection`, which also "
        "rewrites every record batch.",
        "",
        f"Load: 1-minute load average {loads[0]:.2f} at the start, {loads[-1]:.2f} at the end, "
        f"median {statistics.median(run_loads):.2f} over the runs "
        f"(range {min(run_loads):.2f}–{max(run_loads):.2f}) on 2 CPUs shared with other work: "
        "read the ratios, not the absolute figures.",
        "",
        "| case | target | MiB/s | × direct | × no interceptor | node CPU s/GiB "
        "| CPU × no interceptor |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        direct = median(runs, case.key, "direct")
        plain = median(runs, case.key, "kgateway-none")
        plain_cpu = median(runs, case.key, "kgateway-none", "cpu_per_gib")
        for target in targets:
            value = median(runs, case.key, target.key)
            cpu = median(runs, case.key, target.key, "cpu_per_gib")
            versus_plain = fmt(_ratio(value, plain), 2) if target.is_proxy else ""
            lines.append(
                f"| {case.title} | {target.title} | {fmt(value)} "
                f"| {fmt(_ratio(value, direct), 2)} | {versus_plain} | {fmt(cpu)} "
                f"| {fmt(_ratio(cpu, plain_cpu), 2) if target.is_proxy else ''} |"
            )
    errors = [r for r in runs if r.error]
    lines += [
        "",
        "Proof: every client ran under strace and never connected to a broker or controller "
        "port through a gateway; each node counted the records' bytes; each node's log shows "
        "its interceptors were built"
        + "".join(f"; {key}: {proof}" for key, proof in proofs.items() if proof)
        + ".",
    ]
    lines += [f"\n{note}." for note in notes]
    if errors:
        lines += ["", f"{len(errors)} run(s) failed:"]
        lines += [f"- {r.case} via {r.target}: {r.error[:300] if r.error else ''}" for r in errors]
    lines += [END, ""]
    return "\n".join(lines)


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def write(
    out: Path,
    command: str,
    cases: Sequence[Case],
    targets: Sequence[Target],
    runs: Sequence[RunResult],
    loads: Sequence[float],
    proofs: dict[str, str],
    records: int,
    notes: Sequence[str] = (),
) -> Path:
    """Write interceptors.json and replace (or append) this benchmark's section of RESULTS.md."""
    data = {
        "command": command,
        "loads": list(loads),
        "targets": [(t.key, t.title) for t in targets],
        "runs": [r.as_dict() for r in runs],
    }
    new = section(command, cases, targets, runs, loads, proofs, records, notes)
    return write_section(out, "interceptors", data, BEGIN, END, new)
