"""
A librdkafka (confluent-kafka) performance client, run as its own process so
that strace can watch every connect() it makes.

    python bench/rdkafka_client.py produce --bootstrap H:P --topic T --records N \
        --record-size 1024 --acks all [--rate 5000]
    python bench/rdkafka_client.py consume --bootstrap H:P --topic T --records N --group G
    ... [--config security.protocol=ssl --config ssl.ca.location=ca.pem]

Prints one JSON object: records, bytes, seconds, MB/s (MiB/s, as Kafka's tools
count), and for produce the delivery latency percentiles in milliseconds
(librdkafka's own per-message latency: produce() call to delivery report).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

MIB = 1024 * 1024


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def _extra(args: argparse.Namespace) -> dict[str, str]:
    """The C{--config name=value} settings (TLS for the TLS benchmark)."""
    return dict(item.split("=", 1) for item in args.config)


def produce(args: argparse.Namespace) -> dict[str, object]:
    """Send C{args.records} records as fast as allowed (or at C{args.rate}/s)."""
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": args.acks,
            "linger.ms": args.linger_ms,
            "queue.buffering.max.kbytes": 65536,
            "client.id": "kgateway-bench-rdkafka",
            **_extra(args),
        }
    )
    payload = b"x" * args.record_size
    latencies: list[float] = []
    failures: list[str] = []

    def delivered(error: KafkaError | None, message: object) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            latencies.append(message.latency())  # type: ignore[attr-defined]

    # Metadata first, so connection set-up is not timed (the Java tool does the same).
    producer.list_topics(args.topic, timeout=30)
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    started = time.perf_counter()
    for index in range(args.records):
        if interval:
            due = started + index * interval
            while True:
                late = due - time.perf_counter()
                if late <= 0:
                    break
                producer.poll(min(late, 0.001))
        while True:
            try:
                producer.produce(args.topic, payload, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(120)
    seconds = time.perf_counter() - started
    if remaining or failures:
        raise SystemExit(f"{remaining} records undelivered, {len(failures)} failed: {failures[:3]}")
    latencies.sort()
    total = args.records * args.record_size
    return {
        "records": args.records,
        "bytes": total,
        "seconds": seconds,
        "mb_per_sec": total / MIB / seconds,
        "records_per_sec": args.records / seconds,
        "latency_ms": {
            "p50": _percentile(latencies, 0.50) * 1000,
            "p95": _percentile(latencies, 0.95) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000,
            "p999": _percentile(latencies, 0.999) * 1000,
            "max": latencies[-1] * 1000,
        },
    }


def consume(args: argparse.Namespace) -> dict[str, object]:
    """Read C{args.records} records from the start of the topic in a new group."""
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "client.id": "kgateway-bench-rdkafka",
            # When this Python loop falls behind, librdkafka's fetch queue passes its
            # threshold and it waits fetch.queue.backoff.ms (1 s by default) before the
            # next fetch: direct runs, whose fetches come back soonest, hit that most
            # and read 130 MiB/s against 550 through a proxy. 10 ms keeps the stall out.
            "fetch.queue.backoff.ms": 10,
            **_extra(args),
        }
    )
    # Timed from the first record, not from the assignment: between the two librdkafka
    # looks up committed offsets and the log start (control traffic, not the data path).
    first: float | None = None
    consumer.subscribe([args.topic])
    count = 0
    size = 0
    deadline = time.monotonic() + args.timeout
    while count < args.records:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {count} of {args.records} records in {args.timeout}s")
        for message in consumer.consume(num_messages=10000, timeout=0.5):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(error)
            if first is None:
                first = time.perf_counter()
            count += 1
            size += len(message.value() or b"")
    assert first is not None
    seconds = time.perf_counter() - first
    consumer.close()
    return {
        "records": count,
        "bytes": size,
        "seconds": seconds,
        "mb_per_sec": size / MIB / seconds if seconds else float("nan"),
        "records_per_sec": count / seconds if seconds else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--acks", default="1")
    parser.add_argument("--rate", type=float, default=0.0, help="records per second; 0: flat out")
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--group", default="kgateway-bench-rdkafka")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a librdkafka setting, e.g. security.protocol=ssl (repeatable)",
    )
    args = parser.parse_args()
    result = produce(args) if args.mode == "produce" else consume(args)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
