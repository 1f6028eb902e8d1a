"""kafka-python over TLS/SASL: produce ``--count`` numbered records, consume them in a group.

Record ``seq`` has key ``str(seq)`` and value ``value_for(seq, 64)``. Prints
``{"client", "produced", "consumed", "duplicates", "group"}``; fails (exit 1, one
``FAILED:`` line) when a record is missing, changed, or the connection is refused, with
kafka-python's exception class in the message (``SaslAuthenticationFailedError``...).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kp_common import Deadline, fail, parser, run, value_for
from sec_common import add_security_args, kafka_python_settings


def main() -> dict[str, Any]:
    p = parser(__doc__)
    add_security_args(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--group")
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    security = kafka_python_settings(args)
    group = args.group or f"kp-roundtrip-{args.topic}"

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id="kp-roundtrip",
        acks="all",
        request_timeout_ms=15000,
        max_block_ms=int(args.timeout * 500),
        **security,
    )
    futures = [
        producer.send(args.topic, key=str(seq).encode(), value=value_for(seq, 64))
        for seq in range(args.count)
    ]
    producer.flush(timeout=deadline.left)
    for seq, future in enumerate(futures):
        try:
            future.get(timeout=max(deadline.left, 0.1))
        except Exception as error:  # noqa: BLE001 - the test reads the class name
            fail(f"record {seq} not delivered: {type(error).__name__}: {error}")
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id="kp-roundtrip",
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=30000,
        # A topic created a moment ago can be missing from the metadata the group's leader
        # assigns with ("No partition metadata for topic"); the default 5 minutes before the
        # next look left the consumer with nothing for the whole run on a loaded machine.
        metadata_max_age_ms=3000,
        **security,
    )
    consumer.subscribe([args.topic])
    seen: Counter[int] = Counter()
    try:
        while len(seen) < args.count:
            if deadline.expired:
                fail(f"consumed {len(seen)} of {args.count} records before the timeout")
            batches = consumer.poll(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    seq = int(record.key)
                    if record.value != value_for(seq, 64):
                        fail(f"record {seq} arrived changed")
                    seen[seq] += 1
        consumer.commit()
    finally:
        consumer.close()
    return {
        "client": "kafka-python",
        "produced": args.count,
        "consumed": len(seen),
        "duplicates": sorted(seq for seq, n in seen.items() if n > 1),
        "group": group,
    }


if __name__ == "__main__":
    run(main)
