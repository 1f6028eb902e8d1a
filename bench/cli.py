"""
C{python -m bench}: start a real 3-broker Kafka cluster, kgateway nodes and the
peer proxies that can be installed (kafka-proxy, Kroxylicious), run every case
against each of them in alternation, and write RESULTS.md, results.json and
results.png.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from harness.kafka import KafkaCluster
from harness.probe import advertised_brokers

from . import machine, peers, profiling, report, scale
from .targets import Direct, KafkaProxy, KGateway, Kroxylicious, Target
from .workloads import RDKAFKA_CLIENT, Case, Context, RunResult, cases, client_command, run

HERE = Path(__file__).resolve().parent


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark kgateway against direct Kafka (and peer proxies) side by side.",
    )
    parser.add_argument("--smoke", action="store_true", help="seconds-long run for CI")
    parser.add_argument("--repetitions", type=int, help="rounds of alternating runs (default 5)")
    parser.add_argument("--records", type=int, help="records per throughput run (default 300000)")
    parser.add_argument(
        "--latency-records", type=int, help="records per fixed-rate latency run (default 75000)"
    )
    parser.add_argument("--rate", type=int, default=5000, help="records/s for the latency runs")
    parser.add_argument("--connections", type=int, help="idle connections (default 10000)")
    parser.add_argument("--out", type=Path, help="where the results go (default bench/)")
    parser.add_argument(
        "--peers",
        help="comma-separated peer proxies to measure beside kgateway: kafka-proxy, kroxylicious "
        "(default both; none with --smoke)",
    )
    parser.add_argument("--no-peers", action="store_true", help="measure no peer proxy")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument("--no-scale", action="store_true", help="skip the idle connection test")
    parser.add_argument("--cases", help="comma-separated case keys to run (default all)")
    parser.add_argument(
        "--bootstrap-servers",
        help="use this running Kafka cluster instead of starting one (its racks must be a/b/c)",
    )
    parser.add_argument(
        "--forbidden-ports",
        default="",
        help="with --bootstrap-servers: controller ports clients must not reach either",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--interceptors",
        action="store_true",
        help="only the interceptor cost benchmark (bench/interceptors.py)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="only the TLS benchmark: TLS on both legs against plaintext, beside "
        "Kroxylicious and kafka-proxy with TLS (bench/tls.py)",
    )
    parser.add_argument(
        "--failover",
        action="store_true",
        help="only the failover benchmark: the consumer stall after SIGKILL and SIGSTOP of a "
        "node and after the gateway group's coordinator broker dies (bench/failover.py)",
    )
    args = parser.parse_args(argv)
    if args.interceptors or args.tls or args.failover:
        return args  # bench.interceptors, bench.tls and bench.failover pick their own defaults
    defaults = (
        {"repetitions": 1, "records": 3000, "latency_records": 1000, "connections": 200}
        if args.smoke
        else {
            "repetitions": 5,
            "records": 300_000,
            "latency_records": 75_000,
            "connections": 10_000,
        }
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.smoke:
        args.no_profile = True
    if args.no_peers or (args.smoke and args.peers is None):
        args.peers = ""
    elif args.peers is None:
        args.peers = ",".join(peers.FINDERS)
    unknown = set(filter(None, args.peers.split(","))) - set(peers.FINDERS)
    if unknown:
        parser.error(
            f"--peers {args.peers}: unknown peer {', '.join(sorted(unknown))}; "
            f"known: {', '.join(peers.FINDERS)}"
        )
    return args


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def raise_fd_limit(connections: int) -> int:
    """Let this process and its children (brokers, nodes, clients) hold the sockets needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, 4 * connections + 4096)
    if wanted > hard:
        with contextlib.suppress(OSError, ValueError):
            ceiling = int(Path("/proc/sys/fs/nr_open").read_text())
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, ceiling), min(wanted, ceiling)))
            return min(wanted, ceiling)
        wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


@dataclass
class KafkaUnderTest:
    """The Kafka cluster a benchmark runs against, and what every run needs to know of it."""

    bootstrap: str
    #: The cluster this benchmark started (None with --bootstrap-servers); the caller stops it.
    cluster: KafkaCluster | None
    brokers: dict[int, tuple[str, int]]
    broker_ports: set[int]
    #: Ports besides the brokers' that no client may reach (the controllers').
    extra_forbidden: set[int]
    admin: object
    replication: int


def kafka_under_test(args: argparse.Namespace, workdir: Path) -> KafkaUnderTest:
    """The cluster of --bootstrap-servers, or a fresh 3-broker cluster in racks a/b/c."""
    cluster = None
    if args.bootstrap_servers:
        bootstrap = args.bootstrap_servers
        extra_forbidden = {int(p) for p in args.forbidden_ports.split(",") if p}
    else:
        _log("starting a 3-broker Kafka cluster")
        cluster = KafkaCluster(size=3, base_dir=workdir / "kafka", racks=("a", "b", "c"))
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        bootstrap = cluster.bootstrap_servers
        extra_forbidden = set(cluster.controller_ports)
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    brokers = advertised_brokers(host, int(port))
    return KafkaUnderTest(
        bootstrap,
        cluster,
        brokers,
        {p for _, p in brokers.values()},
        extra_forbidden,
        _admin(bootstrap),
        min(3, len(brokers)),
    )


def _admin(bootstrap: str) -> object:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def create_topic(admin: object, name: str, partitions: int, replication: int) -> None:
    from confluent_kafka.admin import NewTopic

    futures = admin.create_topics([NewTopic(name, partitions, replication)])  # type: ignore[attr-defined]
    for future in futures.values():
        future.result(60)


def delete_topic(admin: object, name: str) -> None:
    futures = admin.delete_topics([name])  # type: ignore[attr-defined]
    for future in futures.values():
        with contextlib.suppress(Exception):
            future.result(60)


def _fill(bootstrap: str, topic: str, records: int) -> None:
    """Put the records the consume cases read into C{topic}, straight to the brokers."""
    subprocess.run(
        [
            sys.executable,
            str(RDKAFKA_CLIENT),
            "produce",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--records",
            str(records),
            "--acks",
            "all",
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )


def _describe(result: RunResult) -> str:
    if result.error:
        return f"FAILED {result.error[:300]}"
    parts = [f"{result.mb_per_sec:.1f} MiB/s" if result.mb_per_sec is not None else ""]
    if result.p99_ms is not None:
        parts.append(f"p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms")
    if result.cpu_per_gib is not None:
        parts.append(f"{result.cpu_per_gib:.1f} CPU s/GiB")
    return ", ".join(p for p in parts if p) + f" (load {result.load:.1f})"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.interceptors:
        from . import interceptors

        return interceptors.main(args)
    if args.tls:
        from . import tls

        return tls.main(args)
    if args.failover:
        from . import failover

        return failover.main(args)
    # Stop in order (nodes, brokers, report) on Ctrl-C or SIGTERM, even when started in the
    # background, where the shell leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    limit = raise_fd_limit(args.connections)
    notes = []
    # A kgateway node holds two sockets per client connection (client leg and broker leg).
    most = (limit - 500) // 2
    if args.connections > most:
        notes.append(
            f"{args.connections:,} idle connections were asked for, but the open file limit here "
            f"is {limit:,} and cannot be raised (the hard limit is fixed for this sandbox), and a "
            f"kgateway node needs two descriptors per client connection: measured {most:,}."
        )
        args.connections = most
    workdir = Path(tempfile.mkdtemp(prefix="kgateway-bench-"))
    out = args.out or (Path(tempfile.gettempdir()) / "kgateway-bench-smoke" if args.smoke else HERE)
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    all_cases = cases(args.records, args.latency_records, args.rate)
    if args.cases:
        wanted = set(args.cases.split(","))
        all_cases = [c for c in all_cases if c.key in wanted]
    result = report.Report(
        started=time.strftime("%Y-%m-%d %H:%M %Z"),
        command=command.strip(),
        smoke=args.smoke,
        machine=machine.describe(),
        settings={
            "repetitions": args.repetitions,
            "records": args.records,
            "latency_records": args.latency_records,
            "rate": args.rate,
            "connections": args.connections,
            "open file limit": limit,
        },
        cases=all_cases,
        targets=[],
        loads=[machine.load()],
        notes=notes,
    )
    _log(f"work folder {workdir}; open file limit {limit}; load {machine.load():.2f}")
    cluster: KafkaCluster | None = None
    targets: list[Target] = []
    failed = False
    try:
        kafka = kafka_under_test(args, workdir)
        cluster = kafka.cluster
        bootstrap, brokers, broker_ports = kafka.bootstrap, kafka.brokers, kafka.broker_ports
        extra_forbidden, admin, replication = kafka.extra_forbidden, kafka.admin, kafka.replication
        consume_topic = f"bench-consume-{uuid.uuid4().hex[:8]}"
        create_topic(admin, consume_topic, 3, replication)
        _log(f"filling {consume_topic} with {2 * args.records} records")
        _fill(bootstrap, consume_topic, 2 * args.records)
        ctx = Context(workdir, broker_ports | extra_forbidden, broker_ports, consume_topic)

        targets.append(Direct(bootstrap, broker_ports))
        for count in (1, 3):
            _log(f"starting kgateway ×{count}")
            gateway = KGateway(bootstrap, workdir, count, min(brokers))
            targets.append(gateway)
            gateway.start()
        for wanted in dict.fromkeys(filter(None, args.peers.split(","))):
            peer = peers.FINDERS[wanted]()
            _log(f"{peer.name}: {peer.note}")
            result.peers.append(peer)
            if peer.binary is None:
                continue
            try:
                if peer.name == "kafka-proxy":
                    targets.append(KafkaProxy(peer.binary, brokers, workdir))
                else:
                    targets.append(
                        Kroxylicious(
                            peer.binary, peers.KROXYLICIOUS_LAUNCHER, bootstrap, brokers, workdir
                        )
                    )
            except RuntimeError as e:
                result.peers[-1] = peers.Peer(peer.name, None, f"did not start: {e}")
        result.targets = [(t.key, t.title) for t in targets]

        warm = Case("warm-up", "warm-up", "rdkafka", "produce", "1", 500)
        ctx.produce_topic = f"bench-warmup-{uuid.uuid4().hex[:8]}"
        create_topic(admin, ctx.produce_topic, 3, replication)
        for target in list(targets):
            warmed = run(warm, target, ctx, 0)
            _log(f"warm-up via {target.key}: {_describe(warmed)}")
            if warmed.error and target.is_proxy and not target.key.startswith("kgateway"):
                # A peer that cannot carry this Kafka's clients is reported, not benchmarked.
                result.notes.append(
                    f"{target.title} failed its warm-up and was left out: {warmed.error}"
                )
                targets.remove(target)
                target.stop()
            elif warmed.error:
                raise RuntimeError(f"warm-up via {target.key} failed: {warmed.error}")
        result.targets = [(t.key, t.title) for t in targets]
        delete_topic(admin, ctx.produce_topic)

        for repetition in range(args.repetitions):
            ctx.produce_topic = f"bench-produce-{repetition}-{uuid.uuid4().hex[:8]}"
            create_topic(admin, ctx.produce_topic, 3, replication)
            for index, case in enumerate(all_cases):
                shift = (repetition + index) % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    outcome = run(case, target, ctx, repetition)
                    result.runs.append(outcome)
                    _log(
                        f"[{repetition + 1}/{args.repetitions}] {case.key} via {target.key}: "
                        f"{_describe(outcome)}"
                    )
            delete_topic(admin, ctx.produce_topic)

        gateway_one = next(t for t in targets if t.key == "kgateway-1")
        if not args.no_profile:
            pid = gateway_one.pids()[0]
            profiled = ("java-consume", "rdkafka-consume", "java-produce-acks1")
            for case in (c for c in cases(1, 1, 1) for key in profiled if c.key == key):
                records = 2 * args.records
                ctx.produce_topic = f"bench-profile-{uuid.uuid4().hex[:8]}"
                create_topic(admin, ctx.produce_topic, 3, replication)
                title = f"kgateway ×1 under the {case.title} benchmark"
                _log(f"profiling: {title}")
                client = client_command(case, gateway_one.bootstrap, ctx, records)
                result.profiles.append(
                    profiling.record_during(pid, client, workdir / f"profile-{case.key}.txt", title)
                )
                delete_topic(admin, ctx.produce_topic)

        if not args.no_scale:
            # A fresh node: one that has relayed gigabytes keeps freed memory in its heap,
            # which would hide what the connections cost.
            fresh = KGateway(bootstrap, workdir / "scale", 1, min(brokers))
            _log(f"opening {args.connections} idle connections to a fresh kgateway node")
            try:
                fresh.start()
                node = fresh.nodes[0]
                ports = [node.port_for(broker) for broker in sorted(brokers)]
                measured = scale.measure(
                    fresh, ports, args.connections, workdir, ctx.forbidden_ports
                )
                measured.target = "kgateway ×1"
                result.scale.append(measured)
                _log(
                    f"idle connections: {measured.kib_per_connection} KiB each, "
                    f"{measured.seconds} s, {measured.error or 'ok'}"
                )
            finally:
                fresh.stop()
            for target in targets:
                if isinstance(target, (KafkaProxy, Kroxylicious)):
                    measured = scale.measure(
                        target,
                        sorted(target.client_ports),
                        args.connections,
                        workdir,
                        ctx.forbidden_ports,
                    )
                    measured.target = target.title
                    result.scale.append(measured)
        failed = any(r.error for r in result.runs) or any(s.error for s in result.scale)
    except BaseException:
        failed = True
        args.keep_logs = True
        raise
    finally:
        result.loads.append(machine.load())
        for target in targets:
            with contextlib.suppress(Exception):
                target.stop()
        if cluster is not None:
            cluster.stop()
        if result.targets or result.runs:
            markdown = report.write(result, out)
            _log(f"results in {markdown}")
        if args.keep_logs or failed:
            _log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
