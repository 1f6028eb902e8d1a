"""confluent-kafka producer and consumer in one process: numbered records flowing end to end.

The producer (idempotent, acks=all) sends ``--rate`` records a second, record ``n`` to
partition ``n % partitions``, until ``--stop-file`` exists (or ``--timeout`` passes); the
consumer is assigned every partition from the start and reads as they arrive. At the end the
producer flushes and the consumer reads until it has every acked record (or 30 s pass). The
JSON result has what was acked, consumed, lost (acked, never consumed) and duplicated, and the
wall-clock time of every consumed record: the gaps between them are the stalls a disruption
caused. The first line on stdout is ``ready`` once the first record came back.

``--socket-timeout-ms`` is librdkafka's ``socket.timeout.ms`` for both: how long a request to
a node that stopped answering (SIGSTOP) waits before the client gives up on the connection.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from ck_common import Deadline, fail, parser, run
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--socket-timeout-ms", type=int, default=2000)
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    common = {
        "bootstrap.servers": args.bootstrap,
        "socket.timeout.ms": args.socket_timeout_ms,
        "error_cb": lambda error: print(f"librdkafka error: {error}", file=sys.stderr),
    }
    producer = Producer(
        {
            **common,
            "client.id": "ck-flow-producer",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    consumer = Consumer(
        {
            **common,
            "client.id": "ck-flow-consumer",
            "group.id": f"ck-flow-{os.getpid()}",  # required; partitions are assigned by hand
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    acked: set[int] = set()
    failures: list[str] = []
    consumed: dict[int, int] = {}
    consumed_at: list[float] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(f"{error.name()}: {error.str()}")
        else:
            acked.add(int(message.value() or b"-1"))

    def take(message: Message | None) -> None:
        if message is None:
            return
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                print(f"consume error: {error}", file=sys.stderr)
            return
        n = int(message.value() or b"-1")
        consumed[n] = consumed.get(n, 0) + 1
        if len(consumed_at) == 0:
            print("ready", flush=True)
        consumed_at.append(time.time())

    metadata = producer.list_topics(args.topic, timeout=deadline.left)
    topic = metadata.topics.get(args.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        fail(f"no partitions for {args.topic}: {None if topic is None else topic.error}")
    partitions = sorted(topic.partitions)
    consumer.assign([TopicPartition(args.topic, part, 0) for part in partitions])

    sent = 0
    started = time.monotonic()
    while not os.path.exists(args.stop_file) and not deadline.expired:
        due = int((time.monotonic() - started) * args.rate) + 1
        while sent < due:
            producer.produce(
                args.topic,
                value=str(sent).encode(),
                partition=partitions[sent % len(partitions)],
                on_delivery=on_delivery,
            )
            sent += 1
        producer.poll(0)
        take(consumer.poll(0.01))
    left = producer.flush(max(1.0, min(60.0, deadline.left)))
    settle = Deadline(30.0)
    while not acked <= consumed.keys() and not settle.expired:
        take(consumer.poll(0.1))
    consumer.close()
    lost = sorted(acked - consumed.keys())
    return {
        "sent": sent,
        "acked": len(acked),
        "unflushed": left,
        "failures": failures[:20],
        "failure_count": len(failures),
        "consumed": len(consumed),
        "duplicates": sum(count - 1 for count in consumed.values()),
        "lost": len(lost),
        "lost_sample": lost[:20],
        "consumed_at": consumed_at,
    }


if __name__ == "__main__":
    run(main)
