"""
``python -m bench.hostile_cpu``: what hostile requests cost a node's event loop.

    python -m bench.hostile_cpu                      # this checkout
    python -m bench.hostile_cpu --baseline /tmp/kg-main   # and an older checkout beside it

(``git worktree add /tmp/kg-main main`` makes a baseline.)  Prints:

- the Metadata rewrite for 1,000 / 10,000 / 100,000 partitions, in process
  (best of several), with the baseline's rewriter on the same frames;
- a Metadata request naming 100,000 topics through one real ``twistd
  kgateway`` in front of a real Kafka broker (the harness): the node's CPU
  for it, and a bystander's longest round trip meanwhile, both with a probe
  the gateway answers itself (its event loop alone) and with one that goes
  to the broker and back (the broker's own stall included);
- the ``/metrics`` scrape time after one header-only request per API key
  0-32767, and how many series the scrape has;
- a ReDoS scope's cost: ``{"clientId": "(a+)+$"}`` with a 28-character
  client id, per request through the node, and per match in process (the
  baseline's Python ``re`` is timed at shorter ids: it doubles per
  character);
- the admin API's listing of 10,000 connections, in process.

Every client run is audited: it must reach the gateway and never a broker.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kafka.protocol.metadata import MetadataResponse

from harness import REPO_ROOT
from harness.connect_audit import assert_never_connected, audited_command
from harness.gateway_process import GatewayProcess
from harness.kafka import KafkaCluster, ensure_kafka_libs

HOSTILE = REPO_ROOT / "tests" / "integration" / "clients" / "kp_hostile.py"
PARTITIONS = (1_000, 10_000, 100_000)
PER_TOPIC = 10


def metadata_frame(partitions: int) -> bytes:
    """A Metadata v12 answer: 3 brokers, topics of 10 partitions, as a broker frames it."""
    cls = MetadataResponse[12]
    topic, broker = cls.MetadataResponseTopic, cls.MetadataResponseBroker
    partition = topic.MetadataResponsePartition
    message = cls(
        throttle_time_ms=0,
        brokers=[
            broker(node_id=n, host=f"b{n}.kafka.internal", port=9092, rack="r") for n in (1, 2, 3)
        ],
        cluster_id="bench",
        controller_id=1,
        topics=[
            topic(
                error_code=0,
                name=f"topic-{t:06d}",
                topic_id=None,
                is_internal=False,
                partitions=[
                    partition(
                        error_code=0,
                        partition_index=p,
                        leader_id=1 + p % 3,
                        leader_epoch=1,
                        replica_nodes=[1, 2, 3],
                        isr_nodes=[1, 2, 3],
                        offline_replicas=[],
                    )
                    for p in range(PER_TOPIC)
                ],
            )
            for t in range(partitions // PER_TOPIC)
        ],
    )
    message.API_VERSION = 12
    message.with_header(correlation_id=1)
    return bytes(message.encode(header=True, framed=True))


# Run in a subprocess against a checkout (this one or the baseline): prints
# {partitions: milliseconds} for the frames pickled in argv[2].
_TIME_REWRITE = """
import pickle, sys, time
sys.path.insert(0, sys.argv[1])
from kgateway.protocol.rewrite import rewrite_metadata
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from twisted.logger import globalLogBeginner
globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)
mapping = FixedHostMapper("gw.test", PortPlan(start=19092, count=5, min_broker_id=1)).mapping()
frames = pickle.load(open(sys.argv[2], "rb"))
out = {}
for partitions, frame in frames.items():
    rewrite_metadata(frame, 12, mapping)
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 5 or (spent < 2.0 and runs < 200):
        began = time.perf_counter()
        rewrite_metadata(frame, 12, mapping)
        took = time.perf_counter() - began
        best, spent, runs = min(best, took), spent + took, runs + 1
        if took > 2.0:
            break
    out[partitions] = best * 1000
print(repr(out))
"""


def _times_in(
    checkout: Path, what: str, script: str, args: list[str], timeout: float
) -> dict[int, float]:
    """Run a timing C{script} against C{checkout}'s code (not this tree's); its figures."""
    result = subprocess.run(
        [sys.executable, "-c", script, str(checkout), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{what} timing in {checkout} failed:\n{result.stderr[-2000:]}")
    times: dict[int, float] = eval(result.stdout.strip())  # noqa: S307 - our own repr
    return times


def rewrite_times(checkout: Path, frames_file: Path) -> dict[int, float]:
    """Best-of rewrite milliseconds per partition count, with C{checkout}'s rewriter."""
    return _times_in(checkout, "rewrite", _TIME_REWRITE, [str(frames_file)], 900)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Node:
    """One gateway node (from a checkout) and audited runs of the hostile client against it."""

    def __init__(self, cluster: KafkaCluster, checkout: Path, workdir: Path, name: str) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.name = name
        self.gateway = GatewayProcess(
            cluster.bootstrap_servers,
            workdir / f"gateway-{name}.log",
            env={"PYTHONPATH": str(checkout)},
        )
        self._runs = 0

    def __enter__(self) -> Node:
        self.gateway.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gateway.stop()

    @property
    def pid(self) -> int:
        pid = self.gateway.pid
        assert pid is not None, "the gateway is not running"
        return pid

    def hostile(self, *args: str, timeout: float = 600) -> dict[str, Any]:
        """Run the hostile client under the connect audit; its JSON."""
        self._runs += 1
        trace = self.workdir / f"{self.name}-{self._runs:02d}.strace"
        command = [sys.executable, str(HOSTILE), "--bootstrap", self.gateway.bootstrap, *args]
        result = subprocess.run(
            audited_command(command, trace), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{result.stderr[-2000:]}")
        assert_never_connected(trace, self.cluster.broker_ports | self.cluster.controller_ports)
        answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return answer

    def storm(self, topics: int) -> dict[str, Any]:
        """The 100,000-topic Metadata request: CPU alone, then with each bystander."""
        before = cpu_seconds(self.pid)
        alone = self.hostile("metadata-storm", "--topics", str(topics), "--probe", "none")
        cpu = cpu_seconds(self.pid) - before
        if alone["topics"] != topics or not alone["names_match"]:
            raise RuntimeError(f"wrong answer: {alone['topics']} topics")
        gateway = self.hostile("metadata-storm", "--topics", str(topics), "--probe", "gateway")
        broker = self.hostile("metadata-storm", "--topics", str(topics), "--probe", "broker")
        return {
            "node_cpu_s": cpu,
            "answer_s": alone["seconds"],
            "gateway_probe_max_ms": gateway["bystander_max_ms_during"],
            "gateway_probe_trips": gateway["bystander_trips_during"],
            "broker_probe_max_ms": broker["bystander_max_ms_during"],
            "response_bytes": alone["response_bytes"],
        }

    def scrape(self) -> tuple[float, int]:
        """Seconds for the slowest of three /metrics scrapes, and the series in it."""
        user, password = self.gateway.api_auth
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, self.gateway.api_url, user, password)
        opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(manager))
        slowest, series = 0.0, 0
        for _ in range(3):
            began = time.monotonic()
            with opener.open(self.gateway.api_url + "/metrics", timeout=120) as answer:
                text = answer.read().decode()
            slowest = max(slowest, time.monotonic() - began)
            series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        return slowest, series

    def api_keys_then_scrape(self) -> dict[str, Any]:
        quiet, quiet_series = self.scrape()
        sent = self.hostile("api-keys", "--first", "0", "--last", "32767")
        after, series = self.scrape()
        return {
            "sent": sent["sent"],
            "send_s": sent["seconds"],
            "scrape_before_ms": quiet * 1000,
            "series_before": quiet_series,
            "scrape_after_ms": after * 1000,
            "series_after": series,
        }

    def redos(self, length: int, count: int) -> dict[str, Any]:
        """Per-request cost of a catastrophic scope pattern, through the node."""
        spec = {
            "plugin": "client-id-required",
            "config": {"pattern": ".*"},
            "scope": {"clientId": "(a+)+$"},
        }
        status, answer = self.gateway.api("PUT", "/api/v1/interceptors/redos", spec)
        if status not in (200, 201):
            return {"refused": answer}
        time.sleep(2.5)  # every node runs it within 2 s
        plain = self.hostile("round-trips", "--client-id", "bench-plain", "--count", str(count))
        hostile = self.hostile(
            "round-trips", "--client-id", "a" * length + "!", "--count", str(count)
        )
        self.gateway.api("DELETE", "/api/v1/interceptors/redos")
        return {"plain_median_ms": plain["median_ms"], "redos_median_ms": hostile["median_ms"]}


_TIME_SCOPE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from kgateway.interceptors.api import ClientInfo
from kgateway.interceptors.spec import Scope
scope = Scope.parse({"clientId": "(a+)+$"})
out = {}
for n in map(int, sys.argv[2:]):
    client = ClientInfo("h:1", 1, client_id="a" * n + "!")
    began = time.perf_counter()
    scope.applies_to(client)
    out[n] = (time.perf_counter() - began) * 1000
print(repr(out))
"""


def scope_times(checkout: Path, lengths: list[int]) -> dict[int, float]:
    """Milliseconds of one scope match per client-id length, with C{checkout}'s code."""
    return _times_in(checkout, "scope", _TIME_SCOPE, [str(n) for n in lengths], 600)


def connections_listing_ms(count: int = 10_000) -> float:
    """Milliseconds to build and encode /api/v1/connections for C{count} connections."""
    from kgateway.api.status import NodeStatus
    from kgateway.api.web import json_body
    from kgateway.interfaces import ConnectionView
    from kgateway.net import HostPort

    views = [
        ConnectionView(
            f"10.0.{i // 250}.{i % 250}:{30000 + i}",
            6969,
            1,
            HostPort("b1", 9092),
            f"client-{i}",
            i,
            i,
            0,
            i * 0.01,
        )
        for i in range(count)
    ]

    class _Node:
        def connections(self) -> list[ConnectionView]:
            return views

    class _Request:
        def setResponseCode(self, code: int) -> None: ...
        def setHeader(self, name: bytes, value: bytes) -> None: ...

    status = NodeStatus.__new__(NodeStatus)
    status.node = _Node()  # type: ignore[assignment]
    status._myself = lambda: {"id": "bench"}  # type: ignore[method-assign]
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        json_body(_Request(), status.connections())  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - began)
    return best * 1000


def _row(label: str, new: Any, old: Any = None, unit: str = "") -> str:
    def show(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:,.3f}{unit}" if isinstance(value, float) else f"{value}{unit}"

    return f"  {label:<58} {show(new):>16} {show(old):>16}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_cpu", description=__doc__)
    parser.add_argument("--baseline", type=Path, help="an older checkout to compare with")
    parser.add_argument("--topics", type=int, default=100_000)
    parser.add_argument("--skip-kafka", action="store_true", help="only the in-process figures")
    args = parser.parse_args(argv)
    baseline: Path | None = args.baseline
    header = f"  {'':<58} {'this checkout':>16} {'baseline':>16}"

    workdir = Path(tempfile.mkdtemp(prefix="kgateway-hostile-cpu-"))
    frames_file = workdir / "frames.pkl"
    frames_file.write_bytes(pickle.dumps({p: metadata_frame(p) for p in PARTITIONS}))
    new = rewrite_times(REPO_ROOT, frames_file)
    old = rewrite_times(baseline, frames_file) if baseline else {}
    print("Metadata rewrite (v12, 3 brokers, in process, best of runs)")
    print(header)
    for partitions in PARTITIONS:
        print(_row(f"{partitions:,} partitions", new[partitions], old.get(partitions), " ms"))

    print('\nReDoS scope {"clientId": "(a+)+$"}: one match, in process')
    print(header)
    new_scope = scope_times(REPO_ROOT, [20, 28, 5000])
    old_scope = scope_times(baseline, [16, 18, 20, 22]) if baseline else {}
    for n in sorted({*new_scope, *old_scope}):
        print(_row(f"client id of {n} a's and a '!'", new_scope.get(n), old_scope.get(n), " ms"))

    print("\nAdmin API, in process")
    print(
        _row(
            "/api/v1/connections with 10,000 connections (build + JSON)",
            connections_listing_ms(),
            None,
            " ms",
        )
    )

    if args.skip_kafka:
        return 0
    ensure_kafka_libs()
    results: dict[str, dict[str, Any]] = {}
    holder: dict[str, Any] = {}

    def run() -> None:
        # The cluster lives in this thread (PR_SET_PDEATHSIG follows the starting thread).
        try:
            with KafkaCluster(size=1, base_dir=workdir / "kafka", racks=("a",)) as cluster:
                checkouts = [("new", REPO_ROOT)] + ([("old", baseline)] if baseline else [])
                for name, checkout in checkouts:
                    with Node(cluster, checkout, workdir, name) as node:
                        results[name] = {
                            **node.storm(args.topics),
                            **node.api_keys_then_scrape(),
                            # Python's re doubles per character: the baseline at 20.
                            **(node.redos(28, 50) if name == "new" else node.redos(20, 5)),
                        }
        except BaseException as e:  # reported from the main thread
            holder["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in holder:
        raise holder["error"]
    new_run, old_run = results["new"], results.get("old", {})
    print("\nThrough one twistd kgateway and a Kafka 4.1 broker (audited clients)")
    print(header)
    rows = [
        (f"Metadata naming {args.topics:,} topics: node CPU", "node_cpu_s", " s"),
        ("  its answer's time (broker included)", "answer_s", " s"),
        (
            "  bystander's longest round trip, answered by the gateway",
            "gateway_probe_max_ms",
            " ms",
        ),
        ("  bystander's longest round trip, to the broker and back", "broker_probe_max_ms", " ms"),
        ("one header-only request per API key 0-32767: sent", "sent", ""),
        ("/metrics scrape before them (slowest of 3)", "scrape_before_ms", " ms"),
        ("/metrics scrape after them (slowest of 3)", "scrape_after_ms", " ms"),
        ("  series in the scrape after them", "series_after", ""),
        ("Metadata round trip, plain client id (median of 50)", "plain_median_ms", " ms"),
        (
            "Metadata round trip, (a+)+$ scope, 28 a's and '!' (baseline: 20)",
            "redos_median_ms",
            " ms",
        ),
    ]
    for label, key, unit in rows:
        print(_row(label, new_run.get(key), old_run.get(key), unit))
    if "refused" in new_run:
        print(f"  the (a+)+$ scope was refused: {new_run['refused']}")
    (workdir / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nfigures in {workdir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
