"""confluent-kafka (librdkafka) consumer: report each record's partition, offset and number.

Same contract as ``kp_consume.py``: with ``--group`` it subscribes (``--commit`` commits
synchronously what it read); without, it assigns every partition from the beginning. It
stops after ``--expect`` records, then polls ``--settle`` more seconds for extra ones (with
``--expect 0`` it waits for its assignment first), and fails on timeout.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from ck_common import Deadline, fail, parser, record_summary, run
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


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

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "ck-consume",
            # librdkafka wants a group id even for assign(); an unused one commits nothing.
            "group.id": args.group or f"ck-assign-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": args.isolation,
            "max.partition.fetch.bytes": args.max_partition_fetch_bytes,
            "fetch.max.bytes": args.fetch_max_bytes,
            "receive.message.max.bytes": args.fetch_max_bytes + 65536,
            "error_cb": lambda error: print(f"librdkafka error: {error}", file=sys.stderr),
        }
    )
    records: list[dict[str, Any]] = []
    try:
        if args.group:
            consumer.subscribe([args.topic])
        else:
            topic = consumer.list_topics(args.topic, timeout=deadline.left).topics[args.topic]
            if topic.error is not None or not topic.partitions:
                fail(f"no partitions for {args.topic}: {topic.error}")
            consumer.assign(
                [TopicPartition(args.topic, n, OFFSET_BEGINNING) for n in sorted(topic.partitions)]
            )

        def poll_once() -> None:
            message = consumer.poll(min(0.5, max(0.01, deadline.left)))
            if message is None:
                return
            if message.error() is not None:
                fail(f"consume error: {message.error()}")
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None  # set on every record read
            records.append(record_summary(partition, offset, message.key(), message.value()))

        while len(records) < args.expect or (args.expect == 0 and not consumer.assignment()):
            if deadline.expired:
                fail(
                    f"timed out with {len(records)} of {args.expect} records; "
                    f"assignment {sorted(tp.partition for tp in consumer.assignment())}"
                )
            poll_once()
        settle = Deadline(args.settle)
        while not settle.expired:
            poll_once()
        assignment = consumer.assignment()
        committed = (
            {
                str(tp.partition): tp.offset
                for tp in consumer.committed(assignment, timeout=deadline.left)
            }
            if args.group
            else {}
        )
        if args.commit and records:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return {
        "records": records,
        "assignment": sorted(tp.partition for tp in assignment),
        "committed_before": committed,
    }


if __name__ == "__main__":
    run(main)
