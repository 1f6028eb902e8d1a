"""kafka-python: how long the first Metadata answer takes from ``--bootstrap``, and what it says.

Prints ``{"seconds", "brokers", "has_topic"}``: the seconds from creating the client to its
first cluster metadata, the broker ids (and addresses) it lists, and whether ``--topic`` is
in it.
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer
from kp_common import fail, parser, run


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    args = p.parse_args()
    began = time.monotonic()
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id="kp-first-metadata",
        request_timeout_ms=int(args.timeout * 1000),
    )
    try:
        topics = consumer.topics()
        seconds = time.monotonic() - began
        brokers = sorted((b.node_id, b.host, b.port) for b in consumer._client.cluster.brokers())
    finally:
        consumer.close()
    if not brokers:
        fail("the metadata listed no broker")
    return {"seconds": round(seconds, 3), "brokers": brokers, "has_topic": args.topic in topics}


if __name__ == "__main__":
    run(main)
