"""confluent-kafka (librdkafka): every broker address the cluster hands out, as received.

Reports the Metadata brokers and partition leaders for ``--topic``, DescribeCluster's nodes
and controller, and -- after a consumer has joined ``--group`` (FindCoordinator, JoinGroup,
SyncGroup through the gateway) -- the group's coordinator from DescribeConsumerGroups.
"""

from __future__ import annotations

import sys
from typing import Any

from ck_common import Deadline, fail, parser, run
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    on_error = lambda error: print(f"librdkafka error: {error}", file=sys.stderr)  # noqa: E731
    out: dict[str, Any] = {}

    # (dict[str, Any]: confluent-kafka's stubs leave callbacks such as error_cb out of a config)
    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "client.id": "ck-metadata",
        "error_cb": on_error,
    }
    admin = AdminClient(config)
    metadata = admin.list_topics(args.topic, timeout=deadline.left)
    out["metadata_brokers"] = [
        {"id": b.id, "host": b.host, "port": b.port} for b in metadata.brokers.values()
    ]
    topic = metadata.topics[args.topic]
    if topic.error is not None:
        fail(f"metadata error for {args.topic}: {topic.error}")
    out["leaders"] = {str(n): p.leader for n, p in topic.partitions.items()}

    cluster = admin.describe_cluster(request_timeout=deadline.left).result()
    out["cluster_brokers"] = [
        {"id": n.id, "host": n.host, "port": n.port, "rack": n.rack} for n in cluster.nodes
    ]
    out["controller_id"] = cluster.controller.id if cluster.controller else None

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "ck-metadata",
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "error_cb": on_error,
        }
    )
    try:
        consumer.subscribe([args.topic])
        while not consumer.assignment():
            if deadline.expired:
                fail(f"consumer never got an assignment in group {args.group}")
            message = consumer.poll(0.5)
            if message is not None and message.error() is not None:
                fail(f"consume error: {message.error()}")
        out["consumer_assignment"] = sorted(tp.partition for tp in consumer.assignment())
        group = admin.describe_consumer_groups([args.group], request_timeout=deadline.left)[
            args.group
        ].result()
        coordinator = group.coordinator
        out["group_coordinator"] = {
            "id": coordinator.id,
            "host": coordinator.host,
            "port": coordinator.port,
        }
        out["group_members"] = len(group.members)
    finally:
        consumer.close()
    return out


if __name__ == "__main__":
    run(main)
