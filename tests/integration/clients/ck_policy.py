"""confluent-kafka (librdkafka) client that reports what the gateway's policies told it.

Unlike the other scripts, a refusal is not a failure here: every command prints what each
topic or record got (error code, name and message), for the policy tests to check.

Commands:
  create          create every ``--topic NAME:PARTITIONS:REPLICATION`` in ONE CreateTopics
                  request; report each topic's result, and for the created ones their
                  partitions and replica counts as the gateway describes them
  produce         send ``--count`` records to ``--topic`` with ``--acks``, ``--compression``
                  and ``--idempotence``; report deliveries and errors
  delete          delete every ``--topic`` in one request; report each one's result
  alter-config    set retention.ms on every ``--topic``; report each one's result
  consume         read ``--count`` records of ``--topic`` from the beginning; report values
  exists          report which of the ``--topic`` names exist
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ck_common import Deadline, fail, parser, run
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType


def outcome(future: Any, timeout: float) -> dict[str, Any]:
    """A future's result as {"ok": true} or the error's code, name and message."""
    try:
        future.result(timeout=timeout)
    except KafkaException as e:
        error: KafkaError = e.args[0]
        return {"ok": False, "code": error.code(), "name": error.name(), "message": error.str()}
    return {"ok": True}


def described(admin: AdminClient, topic: str, deadline: Deadline) -> dict[str, Any]:
    while True:
        metadata = admin.list_topics(topic, timeout=max(1.0, deadline.left)).topics.get(topic)
        if metadata is not None and metadata.error is None and metadata.partitions:
            partitions = metadata.partitions.values()
            if all(p.leader >= 0 for p in partitions):
                return {
                    "partitions": len(metadata.partitions),
                    "replicas": sorted({len(p.replicas) for p in partitions}),
                }
        if deadline.expired:
            fail(f"{topic} was created but never got leaders")
        time.sleep(0.2)


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument(
        "command", choices=["create", "produce", "delete", "alter-config", "consume", "exists"]
    )
    p.add_argument("--topic", action="append", required=True)
    p.add_argument("--client-id", default="policy-test")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--acks", choices=["all", "1", "0"], default="all")
    p.add_argument("--compression", default="none")
    p.add_argument("--idempotence", choices=["on", "off"], default="off")
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    common = {"bootstrap.servers": args.bootstrap, "client.id": args.client_id}

    if args.command in ("create", "delete", "alter-config", "exists"):
        admin = AdminClient(common)
        if args.command == "exists":
            names = admin.list_topics(timeout=max(1.0, deadline.left)).topics
            return {"exists": sorted(t for t in args.topic if t in names)}
        if args.command == "create":
            wanted = []
            for spec in args.topic:
                name, partitions, replication = spec.split(":")
                wanted.append(NewTopic(name, int(partitions), int(replication)))
            futures = admin.create_topics(wanted, request_timeout=deadline.left)
        elif args.command == "delete":
            futures = admin.delete_topics(args.topic, request_timeout=deadline.left)
        else:
            resources = [
                ConfigResource(ResourceType.TOPIC, t, set_config={"retention.ms": "3600000"})
                for t in args.topic
            ]
            futures = {
                r.name: f
                for r, f in admin.alter_configs(resources, request_timeout=deadline.left).items()
            }
        results = {name: outcome(f, deadline.left) for name, f in futures.items()}
        if args.command == "create":
            for name, result in results.items():
                if result["ok"]:
                    result.update(described(admin, name, deadline))
        return {"results": results}

    (topic,) = args.topic
    if args.command == "produce":
        errors: list[dict[str, Any]] = []
        delivered: list[int] = []

        def report(error: KafkaError | None, message: Any) -> None:
            if error is None:
                delivered.append(message.offset())
            else:
                errors.append({"code": error.code(), "name": error.name(), "message": error.str()})

        producer = Producer(
            {
                **common,
                "acks": args.acks,
                "compression.type": args.compression,
                "enable.idempotence": args.idempotence == "on",
                "linger.ms": 5,
                "message.timeout.ms": int(max(5.0, deadline.left / 2) * 1000),
            }
        )
        # Repetitive values: librdkafka, like the Java client, sends a batch uncompressed
        # when compressing would not make it smaller.
        for n in range(args.count):
            producer.produce(topic, key=str(n).encode(), value=b"policy " * 100, on_delivery=report)
        left = producer.flush(max(1.0, deadline.left))
        return {"delivered": len(delivered), "errors": errors, "unsent": left}

    consumer = Consumer(
        {
            **common,
            "group.id": f"policy-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    metadata = consumer.list_topics(topic, timeout=max(1.0, deadline.left)).topics.get(topic)
    if metadata is None or metadata.error is not None:
        fail(f"{topic} cannot be described: {metadata and metadata.error}")
    consumer.assign([TopicPartition(topic, n, 0) for n in metadata.partitions])
    values: list[str] = []
    while len(values) < args.count and not deadline.expired:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error() is not None:
            fail(f"consuming {topic}: {message.error()}")
        values.append((message.value() or b"").decode())
    consumer.close()
    return {"values": values}


if __name__ == "__main__":
    run(main)
