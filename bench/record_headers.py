"""
``python -m bench.record_headers``: what header-injection's batch re-encoding costs.

Builds producer-like v2 batches (kafka-python's builder; values half random,
half repeated, so they compress about 2:1) for every codec and times
L{add_headers} on them with two headers, one CPU, best of five.  Prints MB/s
of record payload (keys and values before compression) and of batch bytes as
they are on the wire.
"""

from __future__ import annotations

import os
import sys
import time

from kafka.record.default_records import DefaultRecordBatchBuilder

from kgateway.interceptors.builtin.record_batches import add_headers

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
HEADERS = [("x-client-id", b"orders-service-7"), ("x-client-host", b"10.1.2.3")]


def batch(codec: int, records: int, value_size: int) -> tuple[bytes, int]:
    """A batch as a producer sends it, and its payload bytes."""
    builder = DefaultRecordBatchBuilder(2, codec, False, 1000, 0, 0, 1 << 30)
    payload = 0
    for i in range(records):
        value = os.urandom(value_size // 2) + b"x" * (value_size - value_size // 2)
        key = b"key-%d" % i
        builder.append(i, 1_700_000_000_000 + i, key, value, [])
        payload += len(key) + len(value)
    return bytes(builder.build()), payload


def measure(codec: int, records: int, value_size: int) -> tuple[float, float]:
    """(payload MB/s, wire MB/s) of re-encoding one batch."""
    raw, payload = batch(codec, records, value_size)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        add_headers(raw, HEADERS)
        best = min(best, time.perf_counter() - started)
    return payload / best / 1e6, len(raw) / best / 1e6


def main() -> int:
    print(f"{'codec':6} {'batch':>18} {'payload MB/s':>13} {'wire MB/s':>10}")
    for records, value_size in ((16, 1000), (1000, 1000), (10000, 100)):
        for name, codec in CODECS.items():
            payload, wire = measure(codec, records, value_size)
            shape = f"{records}x{value_size}B"
            print(f"{name:6} {shape:>18} {payload:13.1f} {wire:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
