"""kafka-python client for the record interceptors' tests.

``produce``: ``--count`` numbered records (key ``str(seq)``) to partition ``seq % 3`` with
``--client-id``, ``--compression`` and an idempotent, acks=all producer (with
``--transactional-id``, one committed transaction); reports each record's offset.
``consume``: reads ``--expect`` records from the beginning (CRCs checked) with
``--client-id`` and reports each one's key, headers and the seconds it took.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kp_common import Deadline, fail, parser, run, value_for


class Retries(logging.Handler):
    """Counts the produce errors kafka-python logs as it retries them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.count += 1


def produce(args: Any, deadline: Deadline) -> dict[str, Any]:
    retries = Retries()
    logging.getLogger("kafka").addHandler(retries)
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id=args.client_id,
        acks="all",
        enable_idempotence=True,
        transactional_id=args.transactional_id,
        compression_type=None if args.compression == "none" else args.compression,
        linger_ms=args.linger_ms,
        batch_size=args.batch_size,
        retry_backoff_ms=20,
    )
    if args.transactional_id:
        producer.init_transactions()
        producer.begin_transaction()
    started = time.monotonic()
    futures = [
        (
            seq,
            producer.send(
                args.topic,
                key=str(seq).encode(),
                value=value_for(seq, args.value_size),
                partition=seq % 3,
                headers=[("x-client-id", b"forged"), ("app", b"kept")],
            ),
        )
        for seq in range(args.count)
    ]
    producer.flush(deadline.left)
    sent = []
    for seq, future in futures:
        metadata = future.get(timeout=max(deadline.left, 0.1))
        sent.append({"seq": seq, "p": metadata.partition, "o": metadata.offset})
    if args.transactional_id:
        producer.commit_transaction()
    elapsed = time.monotonic() - started
    producer.close(timeout=5)
    return {"sent": sent, "seconds": elapsed, "retries": retries.count}


def consume(args: Any, deadline: Deadline) -> dict[str, Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id=args.client_id,
        enable_auto_commit=False,
        isolation_level=args.isolation,
        check_crcs=True,
        max_partition_fetch_bytes=args.fetch_max_bytes,
        fetch_max_bytes=args.fetch_max_bytes,
        request_timeout_ms=60000,
    )
    consumer.assign([TopicPartition(args.topic, n) for n in range(3)])
    consumer.seek_to_beginning()
    records: list[dict[str, Any]] = []
    started = time.monotonic()
    while len(records) < args.expect and not deadline.expired:
        polled = consumer.poll(timeout_ms=500)
        for batch in polled.values():
            for message in batch:
                records.append(
                    {
                        "key": message.key.decode() if message.key is not None else None,
                        "p": message.partition,
                        "o": message.offset,
                        "len": len(message.value or b""),
                        "headers": [[k, (v or b"").decode()] for k, v in message.headers],
                    }
                )
    elapsed = time.monotonic() - started
    consumer.close()
    if len(records) < args.expect:
        fail(f"read {len(records)} of {args.expect} records in {args.timeout}s")
    return {"records": records, "seconds": elapsed}


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("mode", choices=["produce", "consume"])
    p.add_argument("--topic", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--compression", default="none")
    p.add_argument("--transactional-id")
    p.add_argument("--linger-ms", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16384)
    p.add_argument("--value-size", type=int, default=0)
    p.add_argument("--isolation", default="read_uncommitted")
    p.add_argument("--fetch-max-bytes", type=int, default=1048576)
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    return (produce if args.mode == "produce" else consume)(args, deadline)


if __name__ == "__main__":
    run(main)
