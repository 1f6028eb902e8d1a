"""kafka-python producer: numbered records at a steady rate, every ack timed.

Record ``n`` (0 .. ``--count``-1) has key ``--prefix`` and value ``<prefix>.<n>`` (the format
of Kafka's VerifiableProducer with ``--value-prefix``) and goes to partition
``n % --partitions``. The producer is idempotent with ``acks=all``; it sends at ``--rate``
records per second and never restarts. The JSON result lists every ack as
``[n, partition, offset, wall-clock ms]`` in the order they arrived, the failures, and the
longest gap between consecutive acks.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kafka import KafkaProducer
from kp_common import Deadline, fail, parser, run


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
    args = p.parse_args()
    deadline = Deadline(args.timeout)

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id=f"kp-numbered-{args.prefix}",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        delivery_timeout_ms=int(args.timeout * 1000),
        request_timeout_ms=30000,
    )
    lock = threading.Lock()
    acks: list[list[int]] = []
    errors: list[str] = []

    def acked(n: int) -> Any:
        def callback(meta: Any) -> None:
            with lock:
                acks.append([n, meta.partition, meta.offset, int(time.time() * 1000)])

        return callback

    def failed(n: int) -> Any:
        def errback(error: Exception) -> None:
            with lock:
                errors.append(f"record {n}: {type(error).__name__}: {error}")

        return errback

    started = time.monotonic()
    try:
        for n in range(args.count):
            due = started + n / args.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if deadline.expired:
                fail(f"timed out sending record {n}")
            future = producer.send(
                args.topic,
                key=str(args.prefix).encode(),
                value=f"{args.prefix}.{n}".encode(),
                partition=n % args.partitions,
            )
            future.add_callback(acked(n))
            future.add_errback(failed(n))
        producer.flush(timeout=deadline.left)
    finally:
        producer.close(timeout=10)
    with lock:
        numbers = sorted(a[0] for a in acks)
        result = {
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
    missing = sorted(set(range(args.count)) - set(numbers))
    if errors or missing:
        fail(
            f"{len(errors)} failed sends {errors[:3]}, {len(missing)} unacked records "
            f"(first {missing[:10]})"
        )
    return result


if __name__ == "__main__":
    run(main)
