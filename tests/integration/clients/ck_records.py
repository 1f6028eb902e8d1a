"""confluent-kafka (librdkafka) client for the record interceptors' tests.

``produce``: ``--count`` numbered records (key ``str(seq)``) to partition ``seq % 3`` with
``--client-id``, ``--compression``, ``--idempotence``, and with ``--transactional-id`` one
transaction per entry of ``--txn-plan commit,abort,...``; reports each record's offset, the
seconds from first send to last acknowledgement.
``consume``: reads ``--expect`` records from the beginning of every partition with
``--client-id`` and reports each one's key, headers and the seconds it took.
"""

from __future__ import annotations

import sys
import time
from typing import Any, cast

from ck_common import Deadline, fail, parser, record_number, run, value_for
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition


def produce(args: Any, deadline: Deadline) -> dict[str, Any]:
    errors: list[str] = []
    reports: dict[int, Message] = {}

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(f"record {record_number(message.key())}: {error}")
        else:
            reports[record_number(message.key())] = message

    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "client.id": args.client_id,
        "acks": "all",
        "enable.idempotence": args.idempotence == "on" or bool(args.transactional_id),
        "compression.type": args.compression,
        "linger.ms": args.linger_ms,
        "batch.num.messages": args.batch_messages,
        "message.timeout.ms": int(args.timeout * 1000 * 0.8),
        "retry.backoff.ms": 20,
        "error_cb": lambda error: print(f"librdkafka error: {error}", file=sys.stderr),
    }
    if args.transactional_id:
        config["transactional.id"] = args.transactional_id
        config["transaction.timeout.ms"] = config["message.timeout.ms"]
    producer = Producer(config)
    if args.transactional_id:
        producer.init_transactions(deadline.left)
    plan = [x for x in args.txn_plan.split(",") if x] or [None]
    sent: list[dict[str, Any]] = []
    transactions = []
    seq = 0
    started = time.monotonic()
    for outcome in plan:
        if outcome is not None:
            producer.begin_transaction()
        numbers = []
        for _ in range(args.count):
            while True:
                try:
                    producer.produce(
                        args.topic,
                        key=str(seq).encode(),
                        value=value_for(seq, args.value_size),
                        partition=seq % 3,
                        headers=[("x-client-id", b"forged"), ("app", b"kept")],
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            numbers.append(seq)
            seq += 1
        left = producer.flush(deadline.left)
        if left:
            fail(f"{left} records still undelivered after {args.timeout}s")
        if errors:
            fail("delivery failed: " + "; ".join(errors[:5]))
        if outcome == "commit":
            producer.commit_transaction(deadline.left)
        elif outcome == "abort":
            producer.abort_transaction(deadline.left)
        if outcome is not None:
            transactions.append({"outcome": outcome, "seqs": numbers})
        sent += [{"seq": n, "p": reports[n].partition(), "o": reports[n].offset()} for n in numbers]
    elapsed = time.monotonic() - started
    return {"sent": sent, "transactions": transactions, "seconds": elapsed}


def consume(args: Any, deadline: Deadline) -> dict[str, Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": args.client_id,
            "group.id": f"unused-{args.client_id}",
            "enable.auto.commit": False,
            "isolation.level": args.isolation,
            "check.crcs": True,
            "fetch.max.bytes": args.fetch_max_bytes,
            "message.max.bytes": min(args.fetch_max_bytes, 1000000),
            "max.partition.fetch.bytes": args.fetch_max_bytes,
            "error_cb": lambda error: print(f"librdkafka error: {error}", file=sys.stderr),
        }
    )
    consumer.assign([TopicPartition(args.topic, n, 0) for n in range(3)])
    records: list[dict[str, Any]] = []
    started = time.monotonic()
    while len(records) < args.expect and not deadline.expired:
        for message in consumer.consume(500, timeout=min(0.5, deadline.left)):
            if message.error() is not None:
                print(f"consume error: {message.error()}", file=sys.stderr)
                continue
            records.append(
                {
                    "key": (message.key() or b"").decode(),
                    "p": message.partition(),
                    "o": message.offset(),
                    "len": len(message.value() or b""),
                    # (a consumed record's headers are a list of (key, bytes) pairs)
                    "headers": [
                        [k, (v or b"").decode()]
                        for k, v in cast(list[tuple[str, bytes]], message.headers() or [])
                    ],
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
    p.add_argument("--idempotence", choices=["on", "off"], default="on")
    p.add_argument("--transactional-id")
    p.add_argument("--txn-plan", default="")
    p.add_argument("--value-size", type=int, default=0)
    p.add_argument("--linger-ms", type=int, default=5)
    p.add_argument("--batch-messages", type=int, default=10000)
    p.add_argument("--isolation", default="read_uncommitted")
    p.add_argument("--fetch-max-bytes", type=int, default=1048576)
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    return (produce if args.mode == "produce" else consume)(args, deadline)


if __name__ == "__main__":
    run(main)
