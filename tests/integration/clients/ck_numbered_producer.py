"""confluent-kafka (librdkafka) producer: numbered records at a steady rate, every ack timed.

Same contract as ``kp_numbered_producer.py``: record ``n`` has key ``--prefix`` and value
``<prefix>.<n>``, goes to partition ``n % --partitions``, idempotent with ``acks=all``, sent at
``--rate`` per second by one producer that never restarts. Acks are timed when librdkafka
reports them (the loop polls at least every few milliseconds).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ck_common import Deadline, fail, parser, run
from confluent_kafka import KafkaError, Message, Producer


def longest_gap(times_ms: list[int]) -> int:
    ordered = sorted(times_ms)
    return max((b - a for a, b in zip(ordered, ordered[1:], strict=False)), default=0)


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, default=300.0, help="records per second")
    p.add_argument("--prefix", type=int, required=True)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--debug", default="", help="librdkafka debug contexts, e.g. broker,metadata")
    args = p.parse_args()
    deadline = Deadline(args.timeout)

    acks: list[list[int]] = []
    errors: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        n = int((message.value() or b"").decode().split(".", 1)[1])
        if error is not None:
            errors.append(f"record {n}: {error}")
        else:
            part, offset = message.partition(), message.offset()
            assert part is not None and offset is not None
            acks.append([n, part, offset, int(time.time() * 1000)])

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": f"ck-numbered-{args.prefix}",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": int(args.timeout * 1000),
            "error_cb": lambda error: print(f"librdkafka error: {error}", file=sys.stderr),
            **({"debug": args.debug} if args.debug else {}),
        }
    )
    started = time.monotonic()
    for n in range(args.count):
        due = started + n / args.rate
        while True:
            pause = due - time.monotonic()
            if pause <= 0:
                break
            producer.poll(min(pause, 0.005))
        if deadline.expired:
            fail(f"timed out sending record {n}")
        while True:
            try:
                producer.produce(
                    args.topic,
                    key=str(args.prefix).encode(),
                    value=f"{args.prefix}.{n}".encode(),
                    partition=n % args.partitions,
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(deadline.left)
    numbers = sorted(a[0] for a in acks)
    missing = sorted(set(range(args.count)) - set(numbers))
    if left or errors or missing:
        fail(
            f"{left} still queued, {len(errors)} failed sends {errors[:3]}, "
            f"{len(missing)} unacked records (first {missing[:10]})"
        )
    return {
        "prefix": args.prefix,
        "count": args.count,
        "acked": len(set(numbers)),
        "ack_duplicates": len(numbers) - len(set(numbers)),
        "errors": errors[:20],
        "error_count": len(errors),
        "longest_gap_ms": longest_gap([a[3] for a in acks]),
        "send_seconds": round(time.monotonic() - started, 2),
        "acks": acks,
    }


if __name__ == "__main__":
    run(main)
