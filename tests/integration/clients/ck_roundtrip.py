"""confluent-kafka (librdkafka) over TLS/SASL: produce ``--count`` records, consume in a group.

Same contract as ``kp_roundtrip.py``. librdkafka does not give up on a refused login or
handshake: it logs the error and retries until the delivery times out. Every error it
reports (``error_cb``) is printed on stderr as ``librdkafka error: <code>: <text>`` and
named in the ``FAILED:`` line, so a test can tell an authentication failure
(``_AUTHENTICATION``) from a TLS one (``_SSL``) or a timeout.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from ck_common import Deadline, fail, parser, run, value_for
from confluent_kafka import Consumer, KafkaError, Message, Producer
from sec_common import add_security_args, rdkafka_settings


def main() -> dict[str, Any]:
    p = parser(__doc__)
    add_security_args(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--group")
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    group = args.group or f"ck-roundtrip-{args.topic}"
    reported: list[str] = []

    def on_error(error: KafkaError) -> None:
        line = f"{error.name()}: {error.str()}"
        print(f"librdkafka error: {line}", file=sys.stderr, flush=True)
        reported.append(line)

    def errors_seen() -> str:
        distinct = list(dict.fromkeys(reported))
        return "; errors reported: " + (" | ".join(distinct[:5]) if distinct else "none")

    common: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "client.id": "ck-roundtrip",
        "error_cb": on_error,
        **rdkafka_settings(args),
    }
    delivered: dict[int, Message] = {}
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(f"record {int(message.key() or b'-1')}: {error.name()}: {error.str()}")
        else:
            delivered[int(message.key() or b"-1")] = message

    producer = Producer(
        {**common, "acks": "all", "linger.ms": 5, "message.timeout.ms": int(args.timeout * 500)}
    )
    for seq in range(args.count):
        producer.produce(
            args.topic, key=str(seq).encode(), value=value_for(seq, 64), on_delivery=on_delivery
        )
        producer.poll(0)
    left = producer.flush(deadline.left)
    if failures or left:
        fail(
            f"{len(failures) + left} of {args.count} records not delivered: "
            + "; ".join(failures[:3])
            + errors_seen()
        )

    consumer = Consumer(
        {
            **common,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    seen: Counter[int] = Counter()
    try:
        while len(seen) < args.count:
            if deadline.expired:
                fail(
                    f"consumed {len(seen)} of {args.count} records before the timeout"
                    + errors_seen()
                )
            for message in consumer.consume(num_messages=500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    fail(f"consume: {error.name()}: {error.str()}")
                seq = int(message.key() or b"-1")
                if message.value() != value_for(seq, 64):
                    fail(f"record {seq} arrived changed")
                seen[seq] += 1
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return {
        "client": "librdkafka",
        "produced": args.count,
        "consumed": len(seen),
        "duplicates": sorted(seq for seq, n in seen.items() if n > 1),
        "group": group,
    }


if __name__ == "__main__":
    run(main)
