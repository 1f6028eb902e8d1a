"""confluent-kafka (librdkafka) consumer group member that reads a topic to its end and checks it.

Values are ``<prefix>.<n>`` (VerifiableProducer's ``--value-prefix`` format, also written by
``kp_numbered_producer.py`` and ``ck_numbered_producer.py``). For every ``--expect
PREFIX=COUNT`` the numbers 0..COUNT-1 must each appear exactly once, and within each partition
one producer's numbers must strictly increase with the offset. The consumer joins ``--group``,
waits for its assignment, takes the end offsets, and reads until it has reached them all.
The JSON result says what was read and every violation found (also reported by failing).
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from typing import Any

from ck_common import Deadline, fail, parser, run
from confluent_kafka import Consumer, Message


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--expect", action="append", default=[], help="PREFIX=COUNT, repeatable")
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    expected = {int(k): int(v) for k, v in (e.split("=", 1) for e in args.expect)}

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "ck-verifying-consumer",
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "error_cb": lambda error: print(f"librdkafka error: {error}", file=sys.stderr),
        }
    )
    seen: dict[int, Counter[int]] = defaultdict(Counter)
    last: dict[tuple[int, int], tuple[int, int]] = {}  # (partition, prefix) -> (offset, n)
    order_violations: list[str] = []
    malformed: list[str] = []
    per_partition: dict[int, Counter[int]] = defaultdict(Counter)
    next_offset: dict[int, int] = {}

    def handle(message: Message) -> None:
        if message.error() is not None:
            fail(f"consume error: {message.error()}")
        part, offset = message.partition(), message.offset()
        assert part is not None and offset is not None
        next_offset[part] = offset + 1
        text = (message.value() or b"").decode(errors="replace")
        try:
            prefix_text, number_text = text.split(".", 1)
            prefix, n = int(prefix_text), int(number_text)
        except ValueError:
            malformed.append(f"{part}/{offset}: {text[:40]!r}")
            return
        seen[prefix][n] += 1
        per_partition[part][prefix] += 1
        before = last.get((part, prefix))
        if before is not None and n <= before[1]:
            order_violations.append(
                f"partition {part}: producer {prefix} wrote {n} at offset {offset} "
                f"after {before[1]} at offset {before[0]}"
            )
        last[(part, prefix)] = (offset, n)

    try:
        topic = consumer.list_topics(args.topic, timeout=deadline.left).topics[args.topic]
        if topic.error is not None or not topic.partitions:
            fail(f"no partitions for {args.topic}: {topic.error}")
        partitions = set(topic.partitions)
        consumer.subscribe([args.topic])
        while {tp.partition for tp in consumer.assignment()} != partitions:
            if deadline.expired:
                fail(f"assigned {consumer.assignment()}, not all of {sorted(partitions)}")
            message = consumer.poll(0.2)
            if message is not None:
                handle(message)
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=deadline.left)[1]
            for tp in consumer.assignment()
        }
        while any(next_offset.get(part, 0) < end for part, end in ends.items()):
            if deadline.expired:
                fail(f"timed out at offsets {next_offset} of {ends}")
            message = consumer.poll(0.5)
            if message is not None:
                handle(message)
    finally:
        consumer.close()

    report: dict[str, Any] = {}
    problems: list[str] = []
    for prefix, count in sorted(expected.items()):
        numbers = seen.get(prefix, Counter())
        missing = [n for n in range(count) if numbers[n] == 0]
        duplicated = sorted(n for n, times in numbers.items() if times > 1)
        outside = sorted(n for n in numbers if not 0 <= n < count)
        report[str(prefix)] = {
            "distinct": sum(1 for n in numbers if 0 <= n < count),
            "records": sum(numbers.values()),
            "missing": len(missing),
            "duplicated": len(duplicated),
            "outside": len(outside),
        }
        if missing or duplicated or outside:
            problems.append(
                f"producer {prefix}: {len(missing)} missing (first {missing[:10]}), "
                f"{len(duplicated)} duplicated (first {duplicated[:10]}), "
                f"{len(outside)} out of range (first {outside[:10]})"
            )
    strangers = sorted(set(seen) - set(expected))
    if strangers:
        problems.append(f"records from unexpected producers {strangers}")
    if order_violations:
        problems.append(
            f"{len(order_violations)} ordering violations, first: {order_violations[:5]}"
        )
    if malformed:
        problems.append(f"{len(malformed)} malformed values, first: {malformed[:5]}")
    if problems:
        fail("; ".join(problems))
    return {
        "producers": report,
        "end_offsets": {str(k): v for k, v in sorted(ends.items())},
        "per_partition": {
            str(part): {str(k): v for k, v in sorted(c.items())}
            for part, c in sorted(per_partition.items())
        },
        "order_violations": len(order_violations),
    }


if __name__ == "__main__":
    run(main)
