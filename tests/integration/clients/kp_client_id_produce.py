"""kafka-python producer with a given client id: send one record and report whether it landed.

Exits 0 either way and reports ``{"ok": bool, "error": ...}``: a refused client is an
expected outcome.  ``--create`` first creates ``--topic`` (one partition) if it is missing.
"""

from __future__ import annotations

from typing import Any

import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kp_common import parser, run


def main() -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--create", action="store_true")
    args = p.parse_args()
    if args.create:
        admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, client_id=args.client_id)
        try:
            admin.create_topics([NewTopic(args.topic, 1, 3)])
        except Errors.TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
    try:
        producer = KafkaProducer(
            bootstrap_servers=args.bootstrap,
            client_id=args.client_id,
            acks="all",
            max_block_ms=int(args.timeout * 1000),
            request_timeout_ms=int(args.timeout * 1000),
            retries=0,
        )
    except Exception as error:  # noqa: BLE001 - a refused bootstrap is an outcome too
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    try:
        metadata = producer.send(args.topic, key=b"k", value=b"v").get(timeout=args.timeout)
        return {"ok": True, "offset": metadata.offset}
    except Exception as error:  # noqa: BLE001
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    finally:
        producer.close(timeout=5)


if __name__ == "__main__":
    run(main)
