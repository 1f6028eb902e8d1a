"""confluent-kafka (librdkafka) producer: send numbered records, report where each one landed.

Same contract as ``kp_produce.py``: record ``seq`` has key ``str(seq)`` and value
``value_for(seq, --value-size)``; without a ``--compression`` list it goes to partition
``seq % --partitions``; with a list of N codecs, one producer per codec sends ``--count``
records to partition i. With ``--transactional-id``, ``--txn-plan commit,abort,...`` runs
one transaction of ``--count`` records per entry.
"""

from __future__ import annotations

import sys
from typing import Any

from ck_common import Deadline, digest, fail, parser, record_number, run, value_for
from confluent_kafka import KafkaError, Message, Producer


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--acks", choices=["all", "1", "0"], default="all")
    p.add_argument("--idempotence", choices=["on", "off"], default="off")
    p.add_argument("--compression", default="")
    p.add_argument("--value-size", type=int, default=0)
    p.add_argument("--max-request-size", type=int, default=1000000)
    p.add_argument("--transactional-id")
    p.add_argument("--txn-plan", default="")
    p.add_argument("--linger-ms", type=int, default=5)
    args = p.parse_args()
    deadline = Deadline(args.timeout)

    codecs: list[str | None] = [c for c in args.compression.split(",") if c] or [None]
    sent: list[dict[str, Any]] = []
    transactions: list[dict[str, Any]] = []
    errors: list[str] = []
    reports: dict[int, Message] = {}

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(f"record {record_number(message.key())}: {error}")
        else:
            reports[record_number(message.key())] = message

    seq = args.start
    for index, codec in enumerate(codecs):
        config: dict[str, Any] = {
            "bootstrap.servers": args.bootstrap,
            "client.id": f"ck-produce-{codec or 'none'}",
            "acks": args.acks,
            "enable.idempotence": args.idempotence == "on" or bool(args.transactional_id),
            "compression.type": codec or "none",
            "message.max.bytes": args.max_request_size,
            "linger.ms": args.linger_ms,
            "message.timeout.ms": int(args.timeout * 1000 / 2),
            "error_cb": lambda error: print(f"librdkafka error: {error}", file=sys.stderr),
        }
        if args.transactional_id:
            config["transactional.id"] = args.transactional_id
        producer = Producer(config)
        if args.transactional_id:
            producer.init_transactions(deadline.left)
        plan = [x for x in args.txn_plan.split(",") if x] or [None]
        for outcome in plan:
            if outcome is not None:
                producer.begin_transaction()
            batch = []
            for _ in range(args.count):
                partition = index if len(codecs) > 1 else seq % args.partitions
                value = value_for(seq, args.value_size)
                producer.produce(
                    args.topic,
                    key=str(seq).encode(),
                    value=value,
                    partition=partition,
                    on_delivery=delivered,
                )
                producer.poll(0)
                batch.append((seq, partition, value))
                seq += 1
            left = producer.flush(deadline.left)
            if left:
                fail(f"{left} records still undelivered after {args.timeout}s")
            if errors:
                fail("delivery failed: " + "; ".join(errors[:5]))
            for number, partition, value in batch:
                message = reports[number]
                if message.partition() != partition:
                    fail(
                        f"record {number} went to partition {message.partition()}, not {partition}"
                    )
                sent.append(
                    {
                        "seq": number,
                        "p": partition,
                        "o": message.offset(),
                        "len": len(value),
                        "sha": digest(value),
                        "codec": codec,
                    }
                )
            if outcome == "commit":
                producer.commit_transaction(deadline.left)
            elif outcome == "abort":
                producer.abort_transaction(deadline.left)
            elif outcome is not None:
                fail(f"unknown transaction outcome {outcome!r}")
            if outcome is not None:
                transactions.append({"outcome": outcome, "seqs": [b[0] for b in batch]})
    idempotent = args.idempotence == "on" or bool(args.transactional_id)
    return {"sent": sent, "transactions": transactions, "acks": args.acks, "idempotent": idempotent}


if __name__ == "__main__":
    run(main)
