"""
The demo: three real Kafka brokers, one gateway node, traffic through it.

Run with C{python -m kgateway.demo}.  It shows what a client is told about
the cluster (only gateway addresses), produces and consumes through the
gateway with a consumer group, and tears everything down.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from kgateway.testing.gateway_process import GatewayProcess
from kgateway.testing.kafka_cluster import KafkaCluster, ensure_kafka_libs


def main(argv: list[str] | None = None) -> None:
    """Run the demo end to end."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--records", type=int, default=1000, help="how many records to send")
    args = parser.parse_args(argv)

    ensure_kafka_libs()
    workdir = Path(tempfile.mkdtemp(prefix="kgateway-demo-"))
    print(f"== Starting 3 Kafka brokers (KRaft, racks a/b/c); logs in {workdir}")
    with KafkaCluster(size=3, base_dir=workdir / "kafka") as cluster:
        for broker in cluster.brokers:
            print(f"   broker {broker.node_id}: {broker.host}:{broker.port} rack {broker.rack}")
        gateway = GatewayProcess(cluster.bootstrap_servers, workdir / "gateway.log")
        with gateway:
            print(
                f"== Gateway node listening on ports {gateway.ports.start}-{gateway.ports.stop - 1}"
            )
            bootstrap = gateway.bootstrap
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kgateway-demo")
            admin.create_topics([NewTopic("demo", num_partitions=3, replication_factor=3)])
            described = admin.describe_cluster()
            print(f"== The client bootstrapped from {bootstrap} and was given these brokers:")
            for broker in sorted(described["brokers"], key=lambda b: b["broker_id"]):
                print(
                    f"   broker {broker['broker_id']}: {broker['host']}:{broker['port']}"
                    f" rack {broker['rack']}"
                )
            admin.close()

            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
            for i in range(args.records):
                producer.send("demo", key=str(i % 10).encode(), value=f"record {i}".encode())
            producer.flush()
            producer.close()
            print(f"== Produced {args.records} records to 'demo' through the gateway")

            consumer = KafkaConsumer(
                "demo",
                bootstrap_servers=bootstrap,
                group_id="demo-group",
                auto_offset_reset="earliest",
                consumer_timeout_ms=10000,
            )
            started = time.monotonic()
            seen = 0
            for _ in consumer:
                seen += 1
                if seen == args.records:
                    break
            consumer.commit()
            consumer.close()
            print(
                f"== Consumed {seen} records with group 'demo-group' "
                f"in {time.monotonic() - started:.1f}s"
            )
            if seen != args.records:
                raise SystemExit(f"demo failed: consumed {seen} of {args.records}")
    print("== Done; brokers and gateway stopped")


if __name__ == "__main__":
    main()
