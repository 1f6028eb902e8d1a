"""confluent-kafka (librdkafka) over TLS: every broker address the gateway hands out.

Prints Metadata's brokers (``list_topics``), DescribeCluster's brokers and the group
coordinator of ``--group`` (FindCoordinator, through ``describe_consumer_groups`` after a
consumer has joined and committed), each as ``{"id", "host", "port"}``; the admin calls
themselves go through the gateway's one port, like every other request.
"""

from __future__ import annotations

from typing import Any

from ck_common import Deadline, fail, parser, run
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from sec_common import add_security_args, rdkafka_settings


def node(found: Any) -> dict[str, Any]:
    return {"id": found.id, "host": found.host, "port": found.port}


def main() -> dict[str, Any]:
    p = parser(__doc__)
    add_security_args(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    common = {"bootstrap.servers": args.bootstrap, **rdkafka_settings(args)}
    admin = AdminClient({**common, "client.id": "ck-sni-metadata"})
    metadata = admin.list_topics(timeout=deadline.left)
    out: dict[str, Any] = {
        "metadata_brokers": sorted((node(b) for b in metadata.brokers.values()), key=str),
    }
    cluster = admin.describe_cluster(request_timeout=deadline.left).result(deadline.left)
    out["cluster_brokers"] = sorted((node(b) for b in cluster.nodes), key=str)
    consumer = Consumer({**common, "group.id": args.group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(args.topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    groups = admin.describe_consumer_groups([args.group], request_timeout=deadline.left)
    described = groups[args.group].result(deadline.left)
    if described.coordinator is None:
        fail(f"group {args.group}: no coordinator")
    out["coordinator"] = node(described.coordinator)
    return out


if __name__ == "__main__":
    run(main)
