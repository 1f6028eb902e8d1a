"""kafka-python: every broker address the cluster hands out, as the client received it.

Reports the Metadata brokers and partition leaders for ``--topic``, DescribeCluster's
brokers and controller, and the group coordinator of ``--group`` as found by the admin
client (FindCoordinator) and by a consumer that joins the group.
"""

from __future__ import annotations

import time
from typing import Any

import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer
from kp_common import Deadline, fail, parser, run


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    out: dict[str, Any] = {}

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, client_id="kp-metadata")
    try:
        # The raw Metadata response (KafkaAdminClient has no public call that returns it).
        metadata = admin._manager.run(admin._get_cluster_metadata, [args.topic])
        out["metadata_brokers"] = [
            {"id": b["node_id"], "host": b["host"], "port": b["port"], "rack": b["rack"]}
            for b in metadata["brokers"]
        ]
        (topic,) = metadata["topics"]
        out["leaders"] = {str(p["partition_index"]): p["leader_id"] for p in topic["partitions"]}

        cluster = admin.describe_cluster()
        out["cluster_brokers"] = [
            {"id": b["broker_id"], "host": b["host"], "port": b["port"], "rack": b["rack"]}
            for b in cluster["brokers"]
        ]
        out["controller_id"] = cluster["controller_id"]

        # The first lookup in a new cluster creates __consumer_offsets and is retriable.
        while True:
            try:
                node_id = admin._manager.run(admin._find_coordinator_id, args.group)
                break
            except Errors.RetriableError as error:
                if deadline.expired:
                    fail(f"FindCoordinator({args.group}) kept failing: {error!r}")
                time.sleep(0.3)
        broker = admin._manager.cluster.broker_metadata(node_id)
        out["admin_coordinator"] = {"id": node_id, "host": broker.host, "port": broker.port}
    finally:
        admin.close()

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id="kp-metadata",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        while not consumer.assignment():
            if deadline.expired:
                fail(f"consumer never got an assignment in group {args.group}")
            consumer.poll(timeout_ms=500)
        coordinator_id = consumer._coordinator.coordinator_id
        broker = consumer._client.cluster.broker_metadata(coordinator_id)
        out["consumer_coordinator"] = {
            "id": str(coordinator_id),
            "host": broker.host,
            "port": broker.port,
        }
        out["consumer_assignment"] = sorted(tp.partition for tp in consumer.assignment())
    finally:
        consumer.close(autocommit=False)
    return out


if __name__ == "__main__":
    run(main)
