"""kafka-python with its own SASL login: produce records to a topic and read them back.

Prints one JSON line: {"produced": n, "consumed": n} or {"error": "<type>: <message>"} (and
exits 1), so a test can check the broker's refusal reached the client.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--security-protocol", default="SASL_PLAINTEXT")
    p.add_argument("--mechanism", default="SCRAM-SHA-512")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    common = {
        "bootstrap_servers": args.bootstrap,
        "security_protocol": args.security_protocol,
        "sasl_mechanism": args.mechanism,
        "sasl_plain_username": args.user,
        "sasl_plain_password": args.password,
    }
    try:
        producer = KafkaProducer(**common, acks="all", request_timeout_ms=20000)
        for seq in range(args.count):
            producer.send(args.topic, key=str(seq).encode(), value=f"v{seq}".encode())
        producer.flush(timeout=args.timeout)
        producer.close()
        consumer = KafkaConsumer(
            args.topic,
            **common,
            group_id=f"sasl-roundtrip-{args.topic}",
            auto_offset_reset="earliest",
            consumer_timeout_ms=2000,
        )
        seen: set[bytes] = set()
        deadline = time.monotonic() + args.timeout
        while len(seen) < args.count and time.monotonic() < deadline:
            for record in consumer:
                seen.add(record.key)
        consumer.close()
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps({"produced": args.count, "consumed": len(seen)}))
    return 0 if len(seen) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
