"""
The demo: three real Kafka brokers (racks a, b, c), a gateway cluster of three
nodes (racks a, b, c), traffic through it, and a node killed.

Run with C{scripts/demo} (or C{python -m harness.demo} from the repository root:
it needs the harness, which is not in the kgateway wheel). It shows what clients
are told about the cluster (only gateway addresses, each broker on a node of its
own rack, and a broker whose rack has no node spread over the others per client),
produces and consumes through the gateway with a consumer group, configures two
interceptors through one node's admin API and shows another node enforcing them,
kills a node and shows the mapping without it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from harness.gateway_process import GatewayProcess
from harness.kafka import KafkaCluster, ensure_kafka_libs
from harness.probe import advertised_brokers

RACKS = ("a", "b", "c")


def _owner(nodes: dict[str, GatewayProcess], port: int) -> str:
    for rack, node in nodes.items():
        if port in node.ports and node.pid is not None:
            return f"node {rack}"
    return "?"


def owners(nodes: dict[str, GatewayProcess], via: GatewayProcess) -> set[str]:
    """Which nodes one metadata request through C{via} hands out."""
    brokers = advertised_brokers(via.advertised_host, via.port_start)
    return {_owner(nodes, port) for _, port in brokers.values()}


def show_mapping(
    title: str, via: GatewayProcess, nodes: dict[str, GatewayProcess], client_id: str
) -> None:
    """Print the broker → gateway node mapping a metadata request from C{client_id} gets."""
    print(f"   {title}:")
    brokers = advertised_brokers(via.advertised_host, via.port_start, client_id=client_id)
    for broker, (host, port) in sorted(brokers.items()):
        print(
            f"     broker {broker} (rack {RACKS[broker - 1]}) -> {host}:{port}  "
            f"({_owner(nodes, port)})"
        )


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> float:
    """Poll until C{condition()} is true; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise SystemExit(f"demo failed: gave up after {timeout}s")


def configure(node: GatewayProcess, name: str, spec: dict[str, object]) -> None:
    """PUT an interceptor through one node's admin API."""
    status, answer = node.api("PUT", f"/api/v1/interceptors/{name}", spec)
    if status not in (200, 201):
        raise SystemExit(f"demo failed: PUT {name}: HTTP {status} {answer}")


def running(node: GatewayProcess) -> set[str]:
    """The names of the interceptors a node runs, from its admin API."""
    status, answer = node.api("GET", "/api/v1/interceptors")
    if status != 200:
        raise SystemExit(f"demo failed: GET /api/v1/interceptors: HTTP {status} {answer}")
    return {interceptor["name"] for interceptor in answer["interceptors"]}


def show_interceptors(nodes: dict[str, GatewayProcess], bootstrap: str) -> None:
    """Configure interceptors through one node and watch another enforce them."""
    print("== Interceptors, configured through node a's admin API, stored in Kafka:")
    configure(
        nodes["a"],
        "stamp",
        {"plugin": "header-injection", "config": {"headers": {"x-client": "{clientId}"}}},
    )
    configure(nodes["a"], "acks-all", {"plugin": "produce-policy", "config": {"acks": ["all"]}})
    # Every node, not only c: the producer's requests go to the node its metadata names for
    # the partition leader, which may be any of them.
    took = wait_until(
        lambda: all({"stamp", "acks-all"} <= running(node) for node in nodes.values())
    )
    print(f"   nodes b and c run them {took:.2f}s later")
    via_c = nodes["c"].bootstrap
    producer = KafkaProducer(bootstrap_servers=via_c, acks=1, client_id="careless", retries=0)
    try:
        producer.send("demo", value=b"acks=1").get(timeout=30)
        raise SystemExit("demo failed: an acks=1 producer got through produce-policy")
    except KafkaError as e:
        print(f"   an acks=1 producer is refused: {e}")
    finally:
        producer.close()
    producer = KafkaProducer(bootstrap_servers=via_c, acks="all", client_id="billing")
    sent = producer.send("demo", value=b"stamped").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10000)
    partition = TopicPartition("demo", sent.partition)
    consumer.assign([partition])
    consumer.seek(partition, sent.offset)
    record = next(iter(consumer))
    consumer.close()
    print(f"   an acks=all record lands with the headers the gateway added: {record.headers}")
    for name in ("stamp", "acks-all"):
        nodes["b"].api("DELETE", f"/api/v1/interceptors/{name}", None)
    print("   removed through node b")


def main(argv: list[str] | None = None) -> None:
    """Run the demo end to end."""
    parser = argparse.ArgumentParser(description="kgateway demo")
    parser.add_argument("--records", type=int, default=1000, help="how many records to send")
    args = parser.parse_args(argv)

    ensure_kafka_libs()
    workdir = Path(tempfile.mkdtemp(prefix="kgateway-demo-"))
    print(f"== Starting 3 Kafka brokers (KRaft, racks a/b/c); logs in {workdir}")
    with KafkaCluster(size=3, base_dir=workdir / "kafka", racks=RACKS) as cluster:
        for broker in cluster.brokers:
            print(f"   broker {broker.node_id}: {broker.host}:{broker.port} rack {broker.rack}")
        nodes = {
            rack: GatewayProcess(
                cluster.bootstrap_servers,
                workdir / f"gateway-{rack}.log",
                env={
                    "GATEWAY_CLUSTER_ID": "demo",
                    "GATEWAY_RACK_ID": rack,
                    "GATEWAY_GROUP_SESSION_TIMEOUT_MS": "6000",
                },
            )
            for rack in RACKS
        }
        try:
            for rack, node in nodes.items():
                node.start()
                print(
                    f"== Gateway node {rack} (rack {rack}) on ports "
                    f"{node.ports.start}-{node.ports.stop - 1}"
                )
            first = nodes["a"]
            wait_until(lambda: owners(nodes, first) == {"node a", "node b", "node c"})
            print(
                "== The nodes found each other through their Kafka consumer group; "
                "each broker goes to the node in its rack"
            )
            show_mapping("client 1 is told", first, nodes, "client-1")
            show_mapping("client 2 is told", first, nodes, "client-2")

            bootstrap = ",".join(node.bootstrap for node in nodes.values())
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kgateway-demo")
            admin.create_topics([NewTopic("demo", num_partitions=3, replication_factor=3)])
            admin.close()
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
            for i in range(args.records):
                producer.send("demo", key=str(i % 10).encode(), value=f"record {i}".encode())
            producer.flush()
            producer.close()
            print(f"== Produced {args.records} records to 'demo' through the gateway cluster")
            consumer = KafkaConsumer(
                "demo",
                bootstrap_servers=bootstrap,
                group_id="demo-group",
                auto_offset_reset="earliest",
                consumer_timeout_ms=10000,
            )
            seen = 0
            for _ in consumer:
                seen += 1
                if seen == args.records:
                    break
            consumer.commit()
            consumer.close()
            print(f"== Consumed {seen} records with group 'demo-group'")
            if seen != args.records:
                raise SystemExit(f"demo failed: consumed {seen} of {args.records}")

            show_interceptors(nodes, bootstrap)

            print("== Killing gateway node b (SIGKILL)")
            nodes["b"].kill()
            # A killed node's ports belong to no running node ("?") until it is dropped.
            took = wait_until(lambda: "?" not in owners(nodes, first))
            print(
                f"== {took:.1f}s later (the nodes' direct checks, not the group's session"
                " timeout) node b is gone:"
            )
            # Broker 2's rack has no node left: its clients are spread over the others.
            show_mapping("client 3 is now told", first, nodes, "client-3")
            show_mapping("client 4 is now told", first, nodes, "client-4")
        finally:
            for node in nodes.values():
                node.stop()
    print("== Done; brokers and gateway nodes stopped")


if __name__ == "__main__":
    main()
