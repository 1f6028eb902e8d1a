"""confluent-kafka producer that keeps one set of connections open and produces steadily.

It sends ``--rate`` records a second until ``--stop-file`` exists (or ``--timeout``
passes), then reports how many were delivered in each second (epoch seconds), every
delivery failure, and librdkafka's own connection counts per broker (``connects`` and
``disconnects`` from its statistics): what a test needs to show that a certificate renewed
under an open producer did not drop its connections. The first line on stdout is
``ready`` once the first record is delivered.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import Any

from ck_common import Deadline, fail, parser, run
from confluent_kafka import KafkaError, Message, Producer
from sec_common import add_security_args, rdkafka_settings


def main() -> dict[str, Any]:
    p = parser(__doc__)
    add_security_args(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--stop-file", required=True)
    args = p.parse_args()
    deadline = Deadline(args.timeout)
    per_second: Counter[int] = Counter()
    failures: list[str] = []
    brokers: dict[str, dict[str, int]] = {}

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(f"{error.name()}: {error.str()}")
        else:
            per_second[int(time.time())] += 1

    def on_stats(text: str) -> None:
        for broker in json.loads(text).get("brokers", {}).values():
            if broker.get("nodeid", -1) >= 0:
                brokers[str(broker["nodeid"])] = {
                    "connects": broker.get("connects", 0),
                    "disconnects": broker.get("disconnects", 0),
                    "state": broker.get("state"),
                }

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "ck-steady-producer",
            "acks": "all",
            "linger.ms": 0,
            "statistics.interval.ms": 200,
            "stats_cb": on_stats,
            "error_cb": lambda e: print(
                f"librdkafka error: {e.name()}: {e.str()}", file=sys.stderr
            ),
            **rdkafka_settings(args),
        }
    )
    interval = 1.0 / args.rate
    announced = False
    seq = 0
    while not os.path.exists(args.stop_file):
        if deadline.expired:
            fail("the stop file never appeared")
        producer.produce(
            args.topic, key=str(seq).encode(), value=b"steady", on_delivery=on_delivery
        )
        seq += 1
        producer.poll(interval)
        if not announced and per_second:
            print("ready", flush=True)
            announced = True
    left = producer.flush(min(30.0, deadline.left))
    producer.poll(0.5)  # one more statistics callback after the last delivery
    if left:
        fail(f"{left} records undelivered at the end")
    return {
        "sent": seq,
        "delivered": sum(per_second.values()),
        "per_second": {str(k): v for k, v in sorted(per_second.items())},
        "failures": failures[:20],
        "brokers": brokers,
    }


if __name__ == "__main__":
    run(main)
