"""kafka-python producer that reports what the gateway's produce policy told it.

A refusal is not a failure: the script prints how many records were delivered and each
error's class and message (kafka-python hands the broker's per-partition error message on,
so the policy's reason is visible here, where librdkafka shows only the code's name).
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kp_common import Deadline, parser, run


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--client-id", default="policy-test-kp")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--acks", choices=["all", "1"], default="all")
    p.add_argument("--compression", default=None)
    p.add_argument("--idempotence", choices=["on", "off"], default="off")
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id=args.client_id,
        acks="all" if args.acks == "all" else int(args.acks),
        compression_type=args.compression,
        enable_idempotence=args.idempotence == "on",
        retries=0,
    )
    futures = [
        producer.send(args.topic, key=str(n).encode(), value=b"policy " * 100)
        for n in range(args.count)
    ]
    producer.flush(timeout=max(1.0, deadline.left))
    delivered, errors = 0, []
    for future in futures:
        try:
            future.get(timeout=max(1.0, deadline.left))
            delivered += 1
        except KafkaError as e:
            errors.append({"error": type(e).__name__, "message": str(e)})
    producer.close(timeout=5)
    return {"delivered": delivered, "errors": errors}


if __name__ == "__main__":
    run(main)
