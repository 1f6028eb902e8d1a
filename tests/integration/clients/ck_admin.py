"""confluent-kafka (librdkafka) AdminClient through the gateway.

Commands (same as ``kp_admin.py``):
  create-topic  create ``--topic`` (``--partitions``, ``--replication``, ``--config k=v``) and
                wait until every partition has a leader
  offsets       ``--group``'s committed offsets and the end offsets of ``--topic``
  ops           on an existing ``--topic`` holding records in partition 0: describe it,
                create partitions, describe and alter configs, list offsets, delete records,
                delete the topic; report what each step observed afterwards
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ck_common import Deadline, fail, parser, run
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)


def topic_description(admin: AdminClient, topic: str, deadline: Deadline) -> dict[str, Any]:
    metadata = admin.list_topics(topic, timeout=max(1.0, deadline.left)).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return {}
    return {
        str(n): {"leader": p.leader, "replicas": sorted(p.replicas), "isr": sorted(p.isrs)}
        for n, p in metadata.partitions.items()
    }


def wait_for_leaders(
    admin: AdminClient, topic: str, count: int, deadline: Deadline
) -> dict[str, Any]:
    while True:
        partitions = topic_description(admin, topic, deadline)
        if len(partitions) == count and all(p["leader"] >= 0 for p in partitions.values()):
            return partitions
        if deadline.expired:
            fail(f"{topic} did not get {count} partitions with leaders: {partitions}")
        time.sleep(0.2)


def topic_configs(
    admin: AdminClient, topic: str, keys: list[str], deadline: Deadline
) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource], request_timeout=deadline.left)[resource].result()
    return {key: configs[key].value for key in keys if key in configs}


def offsets(
    admin: AdminClient, topic: str, partitions: int, spec: OffsetSpec, deadline: Deadline
) -> dict[str, int]:
    futures = admin.list_offsets(
        {TopicPartition(topic, n): spec for n in range(partitions)}, request_timeout=deadline.left
    )
    return {str(tp.partition): future.result().offset for tp, future in futures.items()}


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("command", choices=["create-topic", "offsets", "ops"])
    p.add_argument("--topic", required=True)
    p.add_argument("--group")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--replication", type=int, default=3)
    p.add_argument("--config", action="append", default=[], help="key=value")
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    # (dict[str, Any]: confluent-kafka's stubs leave callbacks such as error_cb out of a config)
    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "client.id": "ck-admin",
        "error_cb": lambda error: print(f"librdkafka error: {error}", file=sys.stderr),
    }
    admin = AdminClient(config)
    if args.command == "create-topic":
        configs = dict(item.split("=", 1) for item in args.config)
        new = NewTopic(
            args.topic,
            num_partitions=args.partitions,
            replication_factor=args.replication,
            config=configs,
        )
        admin.create_topics([new], request_timeout=deadline.left)[args.topic].result()
        return {
            "partitions": wait_for_leaders(admin, args.topic, args.partitions, deadline),
            "configs": topic_configs(admin, args.topic, list(configs), deadline),
        }
    if args.command == "offsets":
        if not args.group:
            fail("offsets needs --group")
        future = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(args.group)], request_timeout=deadline.left
        )[args.group]
        committed = future.result().topic_partitions
        return {
            "committed": {
                str(tp.partition): tp.offset for tp in committed if tp.topic == args.topic
            },
            "end": offsets(admin, args.topic, args.partitions, OffsetSpec.latest(), deadline),
        }
    return ops(admin, args.topic, deadline)


def ops(admin: AdminClient, topic: str, deadline: Deadline) -> dict[str, Any]:
    out: dict[str, Any] = {"described": topic_description(admin, topic, deadline)}
    before = len(out["described"])

    admin.create_partitions([NewPartitions(topic, before + 2)], request_timeout=deadline.left)[
        topic
    ].result()
    out["after_create_partitions"] = wait_for_leaders(admin, topic, before + 2, deadline)

    keys = ["retention.ms", "cleanup.policy", "max.message.bytes"]
    out["configs_before"] = topic_configs(admin, topic, keys, deadline)
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry(
                "max.message.bytes", "2000000", incremental_operation=AlterConfigOpType.SET
            ),
        ],
    )
    for future in admin.incremental_alter_configs(
        [resource], request_timeout=deadline.left
    ).values():
        future.result()
    out["configs_after"] = topic_configs(admin, topic, keys, deadline)

    out["earliest"] = offsets(admin, topic, 1, OffsetSpec.earliest(), deadline)
    out["latest"] = offsets(admin, topic, 1, OffsetSpec.latest(), deadline)
    if out["latest"]["0"] < 4:
        fail(f"partition 0 holds {out['latest']['0']} records; ops needs at least 4")
    futures = admin.delete_records([TopicPartition(topic, 0, 4)], request_timeout=deadline.left)
    out["delete_records_low_watermark"] = {
        str(tp.partition): f.result().low_watermark for tp, f in futures.items()
    }
    out["earliest_after_delete"] = offsets(admin, topic, 1, OffsetSpec.earliest(), deadline)

    admin.delete_topics([topic], request_timeout=deadline.left)[topic].result()
    while topic in admin.list_topics(timeout=max(1.0, deadline.left)).topics:
        if deadline.expired:
            fail(f"{topic} still listed after delete_topics")
        time.sleep(0.2)
    out["listed_after_delete"] = topic in admin.list_topics(timeout=max(1.0, deadline.left)).topics
    return out


if __name__ == "__main__":
    run(main)
