"""kafka-python consumer: read records and report each one's partition, offset and number.

With ``--group`` it subscribes (and ``--commit`` commits what it read, synchronously);
without, it assigns every partition and reads from the beginning. It stops after
``--expect`` records, then keeps polling ``--settle`` seconds for any extra ones (with
``--expect 0`` it waits for its assignment first), and fails on timeout.
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kp_common import Deadline, fail, parser, record_summary, run


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--group")
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--settle", type=float, default=0.0)
    p.add_argument("--commit", action="store_true")
    p.add_argument(
        "--isolation", choices=["read_committed", "read_uncommitted"], default="read_uncommitted"
    )
    p.add_argument("--max-partition-fetch-bytes", type=int, default=1048576)
    p.add_argument("--fetch-max-bytes", type=int, default=52428800)
    args = p.parse_args()
    deadline = Deadline(args.timeout)

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id="kp-consume",
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=args.isolation,
        max_partition_fetch_bytes=args.max_partition_fetch_bytes,
        fetch_max_bytes=args.fetch_max_bytes,
        request_timeout_ms=30000,
    )
    records: list[dict[str, Any]] = []
    try:
        if args.group:
            consumer.subscribe([args.topic])
        else:
            partitions = None
            while not partitions and not deadline.expired:
                partitions = consumer.partitions_for_topic(args.topic)
                if not partitions:
                    time.sleep(0.1)
            if not partitions:
                fail(f"no partitions known for {args.topic}")
            consumer.assign([TopicPartition(args.topic, n) for n in sorted(partitions)])
            consumer.seek_to_beginning()

        def poll_once() -> None:
            batches = consumer.poll(timeout_ms=int(min(500, deadline.left * 1000)) or 1)
            for tp, messages in batches.items():
                for m in messages:
                    records.append(record_summary(tp.partition, m.offset, m.key, m.value))

        while len(records) < args.expect or (args.expect == 0 and not consumer.assignment()):
            if deadline.expired:
                fail(
                    f"timed out with {len(records)} of {args.expect} records; "
                    f"assignment {sorted(tp.partition for tp in consumer.assignment())}"
                )
            poll_once()
        if args.expect == 0:
            # Positions are set once the fetcher has looked up the committed offsets.
            for tp in consumer.assignment():
                consumer.position(tp, timeout_ms=int(deadline.left * 1000))
        settle = Deadline(args.settle)
        while not settle.expired:
            poll_once()
        assignment = sorted(tp.partition for tp in consumer.assignment())
        positions = {str(tp.partition): consumer.position(tp) for tp in consumer.assignment()}
        if args.commit:
            consumer.commit()
    finally:
        consumer.close(autocommit=False)
    return {"records": records, "assignment": assignment, "positions": positions}


if __name__ == "__main__":
    run(main)
