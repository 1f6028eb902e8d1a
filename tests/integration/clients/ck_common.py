"""Helpers shared by the confluent-kafka (librdkafka) client scripts (``ck_*.py``).

The helpers are library-neutral and live in :mod:`kp_common`; this module only re-exports
them so the ``ck_*`` scripts read on their own.
"""

from kp_common import (
    ClientFailure,
    Deadline,
    digest,
    fail,
    parser,
    record_number,
    record_summary,
    run,
    value_for,
)

__all__ = [
    "ClientFailure",
    "Deadline",
    "digest",
    "fail",
    "parser",
    "record_number",
    "record_summary",
    "run",
    "value_for",
]
