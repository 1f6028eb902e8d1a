"""A Kafka client over SSL (or plaintext), in one of two families: kafka-python or librdkafka.

``--action metadata`` prints the brokers a Metadata answer gave; ``produce`` sends
``--count`` records (or one every 50 ms for ``--seconds``), each acknowledged; ``consume``
reads ``--count`` records of ``--topic`` from its start. ``--ca`` turns SSL on (the CA that
signed the gateway's certificate); ``--cert`` and ``--key`` give the client's own (mTLS).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from kp_common import Deadline, fail, parser, run


def kafka_python_config(args: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"bootstrap_servers": args.bootstrap, "client_id": args.client_id}
    if args.ca:
        config.update(security_protocol="SSL", ssl_cafile=args.ca, ssl_check_hostname=True)
        if args.cert:
            config.update(ssl_certfile=args.cert, ssl_keyfile=args.key)
    return config


def librdkafka_config(args: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "client.id": args.client_id,
        "error_cb": lambda error: print(f"librdkafka error: {error}", file=sys.stderr),
    }
    if args.ca:
        config.update(
            {
                "security.protocol": "SSL",
                "ssl.ca.location": args.ca,
                "ssl.endpoint.identification.algorithm": "https",
            }
        )
        if args.cert:
            config.update({"ssl.certificate.location": args.cert, "ssl.key.location": args.key})
    return config


def kafka_python(args: Any, deadline: Deadline) -> dict[str, Any]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    config = kafka_python_config(args)
    if args.action == "metadata":
        consumer = KafkaConsumer(**config, request_timeout_ms=int(args.timeout * 1000))
        try:
            consumer.topics()
            brokers = consumer._client.cluster.brokers()
            return {"brokers": sorted([b.node_id, b.host, b.port] for b in brokers)}
        finally:
            consumer.close()
    if args.action == "produce":
        producer = KafkaProducer(**config, acks="all", linger_ms=0)
        sent = 0
        try:
            end = time.monotonic() + args.seconds
            while sent < args.count or time.monotonic() < end:
                producer.send(args.topic, f"record-{sent}".encode()).get(timeout=deadline.left)
                sent += 1
                if args.seconds:
                    time.sleep(0.05)
        finally:
            producer.close()
        return {"sent": sent}
    consumer = KafkaConsumer(**config, enable_auto_commit=False)
    try:
        partition = TopicPartition(args.topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        values: list[str] = []
        while len(values) < args.count:
            if deadline.expired:
                fail(f"read {len(values)} of {args.count} records")
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value.decode() for r in records)
        return {"values": values}
    finally:
        consumer.close()


def librdkafka(args: Any, deadline: Deadline) -> dict[str, Any]:
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    config = librdkafka_config(args)
    if args.action == "metadata":
        metadata = AdminClient(config).list_topics(timeout=deadline.left)
        return {"brokers": sorted([b.id, b.host, b.port] for b in metadata.brokers.values())}
    if args.action == "produce":
        producer = Producer({**config, "acks": "all", "linger.ms": 0})
        failures: list[str] = []

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        sent = 0
        end = time.monotonic() + args.seconds
        while sent < args.count or time.monotonic() < end:
            producer.produce(args.topic, f"record-{sent}".encode(), on_delivery=delivered)
            if producer.flush(deadline.left) != 0:
                fail("a record was not delivered in time")
            sent += 1
            if args.seconds:
                time.sleep(0.05)
        if failures:
            fail(f"delivery failed: {failures[:3]}")
        return {"sent": sent}
    consumer = Consumer({**config, "group.id": f"{args.client_id}-group"})
    try:
        consumer.assign([TopicPartition(args.topic, 0, 0)])
        values: list[str] = []
        while len(values) < args.count:
            if deadline.expired:
                fail(f"read {len(values)} of {args.count} records")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                raise KafkaException(message.error())
            value = message.value()
            assert value is not None
            values.append(value.decode())
        return {"values": values}
    finally:
        consumer.close()


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--family", choices=["kafka-python", "librdkafka"], required=True)
    p.add_argument("--action", choices=["metadata", "produce", "consume"], required=True)
    p.add_argument("--topic", default="")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-id", default="tls-client")
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    if args.family == "kafka-python":
        return kafka_python(args, deadline)
    return librdkafka(args, deadline)


if __name__ == "__main__":
    run(main)
