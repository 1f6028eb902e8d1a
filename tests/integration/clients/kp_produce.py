"""kafka-python producer: send numbered records and report where each one landed.

Record ``seq`` has key ``str(seq)`` and the value ``value_for(seq, --value-size)``. Without
``--compression`` list, record ``seq`` goes to partition ``seq % --partitions``; with a list
of N codecs, one producer per codec sends ``--count`` records to partition i (codec i).
With ``--transactional-id``, ``--txn-plan commit,abort,...`` runs one transaction of
``--count`` records per entry.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from kp_common import Deadline, digest, fail, parser, run, value_for


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--start", type=int, default=0, help="number of the first record")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--acks", choices=["all", "1", "0"], default="all")
    p.add_argument("--idempotence", choices=["on", "off"], default="off")
    p.add_argument("--compression", default="", help="comma-separated codecs, one partition each")
    p.add_argument("--value-size", type=int, default=0)
    p.add_argument("--max-request-size", type=int, default=1048576)
    p.add_argument("--transactional-id")
    p.add_argument("--txn-plan", default="", help="e.g. commit,abort,commit")
    p.add_argument("--linger-ms", type=int, default=5)
    args = p.parse_args()
    deadline = Deadline(args.timeout)

    codecs: list[str | None] = [c for c in args.compression.split(",") if c] or [None]
    acks: int | str = "all" if args.acks == "all" else int(args.acks)
    sent: list[dict[str, Any]] = []
    transactions: list[dict[str, Any]] = []
    txn_coordinator = None
    seq = args.start
    for index, codec in enumerate(codecs):
        producer = KafkaProducer(
            bootstrap_servers=args.bootstrap,
            client_id=f"kp-produce-{codec or 'none'}",
            acks=acks,
            enable_idempotence=args.idempotence == "on" or bool(args.transactional_id),
            transactional_id=args.transactional_id,
            compression_type=codec,
            max_request_size=args.max_request_size,
            linger_ms=args.linger_ms,
            request_timeout_ms=int(args.timeout * 1000 / 2),
        )
        acks_used = producer.config["acks"]
        idempotent = producer.config["enable_idempotence"]
        try:
            if args.transactional_id:
                producer.init_transactions()
            plan = [x for x in args.txn_plan.split(",") if x] or [None]
            for outcome in plan:
                if outcome is not None:
                    producer.begin_transaction()
                batch = []
                for _ in range(args.count):
                    partition = index if len(codecs) > 1 else seq % args.partitions
                    value = value_for(seq, args.value_size)
                    future = producer.send(
                        args.topic, key=str(seq).encode(), value=value, partition=partition
                    )
                    batch.append((seq, partition, value, future))
                    seq += 1
                producer.flush(timeout=deadline.left)
                for number, partition, value, future in batch:
                    meta = future.get(timeout=deadline.left)
                    if meta.partition != partition:
                        fail(f"record {number} went to partition {meta.partition}, not {partition}")
                    sent.append(
                        {
                            "seq": number,
                            "p": partition,
                            "o": meta.offset,
                            "len": len(value),
                            "sha": digest(value),
                            "codec": codec,
                        }
                    )
                if outcome == "commit":
                    producer.commit_transaction()
                elif outcome == "abort":
                    producer.abort_transaction()
                elif outcome is not None:
                    fail(f"unknown transaction outcome {outcome!r}")
                if outcome is not None:
                    transactions.append({"outcome": outcome, "seqs": [b[0] for b in batch]})
            if args.transactional_id:
                # Where FindCoordinator(TRANSACTION) sent it (private: no public accessor).
                manager = producer._transaction_manager
                node_id = manager._transaction_coordinator
                broker = manager._metadata.broker_metadata(node_id)
                txn_coordinator = {"id": str(node_id), "host": broker.host, "port": broker.port}
        finally:
            producer.close(timeout=10)
    return {
        "sent": sent,
        "transactions": transactions,
        "acks": acks_used,
        "idempotent": idempotent,
        "txn_coordinator": txn_coordinator,
    }


if __name__ == "__main__":
    run(main)
