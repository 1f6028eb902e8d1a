"""kafka-python consumer: the end offset of partition 0 of ``--topic``."""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kp_common import parser, run


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--client-id", required=True)
    args = p.parse_args()
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, client_id=args.client_id)
    try:
        partition = TopicPartition(args.topic, 0)
        return {"end_offset": consumer.end_offsets([partition])[partition]}
    finally:
        consumer.close()


if __name__ == "__main__":
    run(main)
