"""
C{python -m bench --tls}: what TLS on both legs costs, kgateway beside Kroxylicious and
kafka-proxy (issue 13 item 7).

One real 3-broker cluster with a PLAINTEXT and an SSL listener (L{harness.kafka.secured}),
certificates from one test CA (L{harness.certs}), and in one run, alternating within every
repetition, each case through:

- C{direct} (PLAINTEXT) and C{direct, TLS} (the brokers' SSL listener): the baselines;
- C{kgateway ×1} plaintext, and C{kgateway ×1, TLS}: TLS for clients
  (C{GATEWAY_SECURITY_PROTOCOL=SSL}) and to the brokers (C{KAFKA_SECURITY_PROTOCOL=SSL}),
  and C{kgateway ×1, client-tls}: TLS for clients only, the client leg's share;
- Kroxylicious, plaintext and with TLS on its gateway and to its target cluster;
- kafka-proxy (built from C{../shared/peers/kafka-proxy-<commit>.tar.gz}), plaintext and with
  C{--proxy-listener-tls-enable} and C{--tls-enable}, on loopback only.

Figures: MiB/s (medians), each TLS target against its own plaintext self, kgateway's TLS
against each peer's TLS, and CPU seconds per GiB of the proxy's processes. Every client runs
under strace (L{bench.workloads.run}): through a proxy it must never connect to a broker or
controller port, and the proxy must count the traffic. Writes C{bench/tls.json} and its own
section of C{bench/RESULTS.md} (between markers).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from harness.certs import LOOPBACK_SANS
from harness.client_security import ClientSecurity
from harness.kafka.secured import SSL, SecuredKafkaCluster
from harness.probe import advertised_brokers
from harness.secured_gateway import BrokerSide, ClientSide

from . import machine, peers
from .cli import _admin, _fill, create_topic, delete_topic
from .sections import fmt, median, write_section
from .targets import Direct, KafkaProxy, KGateway, Kroxylicious, PeerTls, Target
from .workloads import Case, Context, RunResult, cases, run

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- tls:begin (python -m bench --tls) -->"
END = "<!-- tls:end -->"
CASE_KEYS = ("java-produce-acks1", "java-consume", "rdkafka-produce-acks1", "rdkafka-consume")
STORE_PASSWORD = "bench-store-secret"
#: (column, plaintext target, its TLS counterpart), for the "TLS / plaintext" ratios.
PAIRS = (
    ("direct", "direct", "direct-tls"),
    ("kgateway", "kgateway-1", "kgateway-1-tls"),
    ("kgateway, client leg only", "kgateway-1", "kgateway-1-client-tls"),
    ("Kroxylicious", "kroxylicious", "kroxylicious-tls"),
    ("kafka-proxy", "kafka-proxy", "kafka-proxy-tls"),
)


def _log(message: str) -> None:
    print(f"[bench --tls {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def _kgateway_error(target: KGateway) -> str:
    """Why a node did not start: the first line of its log that says so."""
    for node in target.nodes:
        for line in node.log_text().splitlines():
            if "kgateway:" in line or "Error" in line or "error" in line:
                return line.strip()[:300]
    return "it did not start"


def _start(gateway: KGateway, targets: list[Target], notes: list[str], failure: str) -> None:
    """Start C{gateway} to be measured; if it does not start, C{failure} and why are noted."""
    try:
        gateway.start()
        targets.append(gateway)
    except Exception as error:  # noqa: BLE001 - reported, the rest still measured
        reason = _kgateway_error(gateway) or _first_line(error)
        notes.append(f"{failure}: {reason}")
        _log(notes[-1])
        gateway.stop()


def main(args: argparse.Namespace) -> int:
    """Run the TLS benchmark with C{args.repetitions} and C{args.records}; 0 when all ran."""
    repetitions = args.repetitions or 3
    records = args.records or 100_000
    workdir = Path(tempfile.mkdtemp(prefix="kgateway-bench-tls-"))
    out = args.out or HERE
    command = "python -m bench --tls " + " ".join(
        f"--{name} {value}"
        for name, value in (("repetitions", args.repetitions), ("records", args.records))
        if value
    )
    all_cases = [c for c in cases(records, 1, 1) if c.key in CASE_KEYS]
    loads = [machine.load()]
    notes: list[str] = []
    runs: list[RunResult] = []
    targets: list[Target] = []
    found: list[peers.Peer] = []
    cluster = SecuredKafkaCluster(
        size=3, base_dir=workdir / "kafka", mtls=False, sasl=False, oauth=False
    )
    failed = False
    try:
        _log("starting a 3-broker Kafka cluster with PLAINTEXT and SSL listeners")
        cluster.start()
        plain_bootstrap = cluster.bootstrap_servers
        brokers = advertised_brokers("127.0.0.1", cluster.brokers[0].port)
        tls_brokers = {info.node_id: (info.host, info.port_of(SSL)) for info in cluster.brokers}
        forbidden = cluster.broker_ports | cluster.controller_ports
        client = ClientSecurity(SSL, ca=cluster.ca_file)
        proxy_identity = cluster.ca.issue("CN=bench proxy,O=kgateway tests", LOOPBACK_SANS)
        proxy_files = proxy_identity.write_pem(workdir / "tls", "proxy")
        peer_tls = PeerTls(proxy_files.certificate, proxy_files.key, cluster.ca_file, client)
        admin = _admin(plain_bootstrap)
        consume_topic = f"bench-tls-consume-{uuid.uuid4().hex[:8]}"
        create_topic(admin, consume_topic, 3, 3)
        _log(f"filling {consume_topic} with {2 * records} records")
        _fill(plain_bootstrap, consume_topic, 2 * records)
        ctx = Context(workdir, forbidden, cluster.broker_ports, consume_topic)

        targets.append(Direct(plain_bootstrap, {info.port for info in cluster.brokers}))
        targets.append(
            Direct(
                cluster.bootstrap_for(SSL),
                {info.port_of(SSL) for info in cluster.brokers},
                client,
                "direct-tls",
                "direct, TLS",
            )
        )
        plain_gateway = KGateway(plain_bootstrap, workdir, 1, min(brokers))
        plain_gateway.start()
        targets.append(plain_gateway)
        tls_env = {
            **BrokerSide(SSL).env(cluster),
            **ClientSide(
                SSL,
                proxy_identity.write_pkcs12(workdir / "tls" / "gateway.p12", STORE_PASSWORD),
                key_store_password=STORE_PASSWORD,
            ).env(),
        }
        _start(
            KGateway(
                tls_env["KAFKA_BOOTSTRAP_SERVERS"],
                workdir,
                1,
                min(brokers),
                env=tls_env,
                security=client,
                suffix="tls",
            ),
            targets,
            notes,
            "kgateway ×1 with TLS was not measured: the node did not start",
        )
        # TLS for clients only (plaintext to the brokers): the client leg's share.
        client_env = {
            **ClientSide(
                SSL, workdir / "tls" / "gateway.p12", key_store_password=STORE_PASSWORD
            ).env(),
        }
        _start(
            KGateway(
                plain_bootstrap,
                workdir,
                1,
                min(brokers),
                env=client_env,
                security=client,
                suffix="client-tls",
            ),
            targets,
            notes,
            "kgateway ×1 with client TLS only was not measured",
        )
        for finder in (peers.kroxylicious, peers.kafka_proxy):
            peer = finder()
            found.append(peer)
            _log(f"{peer.name}: {peer.note}")
            if peer.binary is None:
                continue
            for tls in (None, peer_tls):
                try:
                    if peer.name == "kafka-proxy":
                        wanted = tls_brokers if tls is not None else brokers
                        targets.append(KafkaProxy(peer.binary, wanted, workdir, tls))
                    else:
                        bootstrap = cluster.bootstrap_for(SSL) if tls else plain_bootstrap
                        targets.append(
                            Kroxylicious(
                                peer.binary,
                                peers.KROXYLICIOUS_LAUNCHER,
                                bootstrap,
                                brokers,
                                workdir,
                                tls,
                            )
                        )
                except RuntimeError as error:
                    kind = "with TLS" if tls else "plaintext"
                    notes.append(f"{peer.name} {kind} did not start: {_first_line(error)}")
                    _log(notes[-1])

        warm = Case("warm-up", "warm-up", "rdkafka", "produce", "1", 500)
        ctx.produce_topic = f"bench-tls-warmup-{uuid.uuid4().hex[:8]}"
        create_topic(admin, ctx.produce_topic, 3, 3)
        for target in list(targets):
            warmed = run(warm, target, ctx, 0)
            _log(f"warm-up via {target.key}: {warmed.error or 'ok'}")
            if warmed.error:
                notes.append(f"{target.title} failed its warm-up and was left out: {warmed.error}")
                targets.remove(target)
                target.stop()
        delete_topic(admin, ctx.produce_topic)

        for repetition in range(repetitions):
            ctx.produce_topic = f"bench-tls-produce-{repetition}-{uuid.uuid4().hex[:8]}"
            create_topic(admin, ctx.produce_topic, 3, 3)
            for index, case in enumerate(all_cases):
                shift = (repetition + index) % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    outcome = run(case, target, ctx, repetition)
                    runs.append(outcome)
                    figure = (
                        f"FAILED {outcome.error[:200]}"
                        if outcome.error
                        else f"{outcome.mb_per_sec:.1f} MiB/s"
                        + (f", {outcome.cpu_per_gib:.1f} CPU s/GiB" if outcome.cpu_per_gib else "")
                    )
                    _log(f"[{repetition + 1}/{repetitions}] {case.key} via {target.key}: {figure}")
            delete_topic(admin, ctx.produce_topic)
        failed = any(r.error for r in runs)
    except BaseException:
        failed = True
        raise
    finally:
        loads.append(machine.load())
        for target in targets:
            with contextlib.suppress(Exception):
                target.stop()
        cluster.stop()
        if runs:
            path = write(out, command, all_cases, targets, runs, loads, found, records, notes)
            _log(f"results in {path}")
        if failed:
            _log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def _ratio(value: float | None, base: float | None) -> str:
    return "–" if value is None or not base else f"{value / base:.2f}×"


def section(
    command: str,
    cases: Sequence[Case],
    targets: Sequence[Target],
    runs: Sequence[RunResult],
    loads: Sequence[float],
    found: Sequence[peers.Peer],
    records: int,
    notes: Sequence[str] = (),
) -> str:
    """The RESULTS.md section: throughput, TLS against plaintext, kgateway against peers, CPU."""
    keys = [t.key for t in targets]
    run_loads = [r.load for r in runs] or [0.0]
    repetitions = len({r.repetition for r in runs})
    lines = [
        BEGIN,
        "## TLS on both legs (issue 13)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `{command}`: {records:,} records of "
        f"1 KiB per run, {repetitions} repetition(s), the targets alternating within each "
        "repetition (the starting one rotating); medians. One real 3-broker cluster with a "
        "PLAINTEXT and an SSL listener (ECDSA P-256 certificates of a test CA, TLS 1.3 where "
        "both ends offer it); clients verify the server's name. With TLS, both legs are TLS: "
        "client to proxy and proxy to broker. Kroxylicious 0.12.0 (its runtime from Maven "
        "Central) and kafka-proxy (built from `../shared/peers`) run with their TLS options "
        "on loopback.",
        "",
        f"Load: 1-minute load average {loads[0]:.2f} at the start, {loads[-1]:.2f} at the end, "
        f"median {statistics.median(run_loads):.2f} over the runs "
        f"(range {min(run_loads):.2f}–{max(run_loads):.2f}) on 2 CPUs shared with the brokers, "
        "the client and other work: read the ratios, not the absolute figures.",
        "",
        "### Throughput, MiB/s",
        "",
        "| case | " + " | ".join(t.title for t in targets) + " |",
        "|---|" + "---|" * len(targets),
    ]
    for case in cases:
        row = [fmt(median(runs, case.key, key)) for key in keys]
        lines.append(f"| {case.title} | " + " | ".join(row) + " |")
    pairs = [(label, plain, tls) for label, plain, tls in PAIRS if {plain, tls} <= set(keys)]
    lines += [
        "",
        "### TLS against plaintext (each target's TLS throughput / its own plaintext)",
        "",
        "| case | " + " | ".join(label for label, _, _ in pairs) + " |",
        "|---|" + "---|" * len(pairs),
    ]
    for case in cases:
        row = [
            _ratio(median(runs, case.key, tls), median(runs, case.key, plain))
            for _, plain, tls in pairs
        ]
        lines.append(f"| {case.title} | " + " | ".join(row) + " |")
    peers_tls = [k for k in ("direct-tls", "kroxylicious-tls", "kafka-proxy-tls") if k in keys]
    if "kgateway-1-tls" in keys:
        lines += [
            "",
            "### kgateway with TLS against the others with TLS (throughput ratio)",
            "",
            "| case | " + " | ".join(f"kgateway TLS / {k}" for k in peers_tls) + " |",
            "|---|" + "---|" * len(peers_tls),
        ]
        for case in cases:
            ours = median(runs, case.key, "kgateway-1-tls")
            row = [_ratio(ours, median(runs, case.key, k)) for k in peers_tls]
            lines.append(f"| {case.title} | " + " | ".join(row) + " |")
    proxies = [t for t in targets if t.is_proxy]
    lines += [
        "",
        "### Proxy CPU seconds per GiB of records forwarded",
        "",
        "| case | " + " | ".join(t.title for t in proxies) + " |",
        "|---|" + "---|" * len(proxies),
    ]
    for case in cases:
        row = [fmt(median(runs, case.key, t.key, "cpu_per_gib")) for t in proxies]
        lines.append(f"| {case.title} | " + " | ".join(row) + " |")
    proven = {t.key: sum(1 for r in runs if r.target == t.key and not r.error) for t in targets}
    total = {t.key: sum(1 for r in runs if r.target == t.key) for t in targets}
    lines += [
        "",
        "Proof: every client ran under `strace -f --seccomp-bpf -e trace=connect`; through a "
        "proxy it never connected to a broker or controller port and reached the proxy's "
        "ports, and the proxy counted the traffic (kgateway and kafka-proxy: at least the "
        "records' bytes; Kroxylicious: client requests). Runs proven: "
        + ", ".join(f"{t.title} {proven[t.key]} of {total[t.key]}" for t in targets)
        + ".",
        "",
        "Peers: " + "; ".join(f"**{p.name}**: {p.note}" for p in found) + ".",
    ]
    lines += [f"\n- {note}" for note in notes]
    errors = [r for r in runs if r.error]
    if errors:
        lines += ["", f"{len(errors)} run(s) failed:"]
        lines += [f"- {r.case} via {r.target}: {(r.error or '')[:300]}" for r in errors]
    lines += [END, ""]
    return "\n".join(lines)


def write(
    out: Path,
    command: str,
    cases: Sequence[Case],
    targets: Sequence[Target],
    runs: Sequence[RunResult],
    loads: Sequence[float],
    found: Sequence[peers.Peer],
    records: int,
    notes: Sequence[str] = (),
) -> Path:
    """Write tls.json and replace (or append) this benchmark's section of RESULTS.md."""
    data = {
        "command": command,
        "loads": list(loads),
        "notes": list(notes),
        "targets": [(t.key, t.title) for t in targets],
        "runs": [r.as_dict() for r in runs],
    }
    new = section(command, cases, targets, runs, loads, found, records, notes)
    return write_section(out, "tls", data, BEGIN, END, new)
