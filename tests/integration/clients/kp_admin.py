"""kafka-python KafkaAdminClient through the gateway.

Commands:
  create-topic  create ``--topic`` (``--partitions``, ``--replication``, ``--config k=v``) and
                wait until every partition has a leader
  offsets       ``--group``'s committed offsets and the end offsets of ``--topic``
  ops           on an existing ``--topic`` holding records in partition 0: describe it,
                create partitions, describe and alter configs, list offsets, delete records,
                delete the topic; report what each step observed afterwards
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaAdminClient, OffsetSpec, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
from kp_common import Deadline, fail, parser, run


def topic_description(admin: KafkaAdminClient, topic: str) -> dict[str, Any]:
    (described,) = admin.describe_topics([topic])
    if described["error_code"]:
        fail(f"describe_topics({topic}) error {described['error_code']}")
    return {
        str(p["partition_index"]): {
            "leader": p["leader_id"],
            "replicas": sorted(p["replica_nodes"]),
            "isr": sorted(p["isr_nodes"]),
        }
        for p in described["partitions"]
    }


def wait_for_leaders(
    admin: KafkaAdminClient, topic: str, count: int, deadline: Deadline
) -> dict[str, Any]:
    while True:
        try:
            partitions = topic_description(admin, topic)
        except Exception:  # noqa: BLE001 - not there yet
            partitions = {}
        if len(partitions) == count and all(p["leader"] >= 0 for p in partitions.values()):
            return partitions
        if deadline.expired:
            fail(f"{topic} did not get {count} partitions with leaders: {partitions}")
        time.sleep(0.2)


def topic_configs(admin: KafkaAdminClient, topic: str, keys: list[str]) -> dict[str, Any]:
    result = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, keys)], config_filter="all"
    )
    configs = result["topic"][topic]
    return {key: configs[key]["value"] for key in keys if key in configs}


def offsets(
    admin: KafkaAdminClient, topic: str, partitions: int, spec: OffsetSpec
) -> dict[str, int]:
    result = admin.list_partition_offsets(
        {TopicPartition(topic, n): spec for n in range(partitions)}
    )
    return {str(tp.partition): value.offset for tp, value in result.items()}


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
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, client_id="kp-admin")
    try:
        if args.command == "create-topic":
            configs = dict(item.split("=", 1) for item in args.config)
            admin.create_topics(
                {
                    args.topic: {
                        "num_partitions": args.partitions,
                        "replication_factor": args.replication,
                        "configs": configs,
                    }
                }
            )
            return {
                "partitions": wait_for_leaders(admin, args.topic, args.partitions, deadline),
                "configs": topic_configs(admin, args.topic, list(configs)),
            }
        if args.command == "offsets":
            if not args.group:
                fail("offsets needs --group")
            committed = admin.list_group_offsets({args.group: None})[args.group]
            return {
                "committed": {
                    str(tp.partition): om.offset
                    for tp, om in committed.items()
                    if tp.topic == args.topic
                },
                "end": offsets(admin, args.topic, args.partitions, OffsetSpec.LATEST),
            }
        return ops(admin, args.topic, deadline)
    finally:
        admin.close()


def ops(admin: KafkaAdminClient, topic: str, deadline: Deadline) -> dict[str, Any]:
    out: dict[str, Any] = {"described": topic_description(admin, topic)}
    before = len(out["described"])

    admin.create_partitions({topic: before + 2})
    out["after_create_partitions"] = wait_for_leaders(admin, topic, before + 2, deadline)

    keys = ["retention.ms", "cleanup.policy", "max.message.bytes"]
    out["configs_before"] = topic_configs(admin, topic, keys)
    admin.alter_configs(
        [
            ConfigResource(
                ConfigResourceType.TOPIC,
                topic,
                {
                    "retention.ms": (AlterConfigOp.SET, "3600000"),
                    "max.message.bytes": (AlterConfigOp.SET, "2000000"),
                },
            )
        ]
    )
    out["configs_after"] = topic_configs(admin, topic, keys)

    out["earliest"] = offsets(admin, topic, 1, OffsetSpec.EARLIEST)
    out["latest"] = offsets(admin, topic, 1, OffsetSpec.LATEST)
    latest = out["latest"]["0"]
    if latest < 4:
        fail(f"partition 0 holds {latest} records; ops needs at least 4")
    deleted = admin.delete_records({TopicPartition(topic, 0): 4})
    out["delete_records_low_watermark"] = {
        str(tp.partition): v["low_watermark"] for tp, v in deleted.items()
    }
    out["earliest_after_delete"] = offsets(admin, topic, 1, OffsetSpec.EARLIEST)

    admin.delete_topics([topic])
    while topic in admin.list_topics():
        if deadline.expired:
            fail(f"{topic} still listed after delete_topics")
        time.sleep(0.2)
    out["listed_after_delete"] = topic in admin.list_topics()
    return out


if __name__ == "__main__":
    run(main)
