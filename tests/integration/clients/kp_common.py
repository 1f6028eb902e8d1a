"""Helpers shared by the kafka-python client scripts (``kp_*.py``).

Every script takes ``--bootstrap`` (the gateway), prints one JSON document on stdout when it
succeeds, and exits 1 with a one-line ``<script>: FAILED: <why>`` on stderr when it does not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

SCRIPT = os.path.basename(sys.argv[0])


class ClientFailure(Exception):
    """The client saw something wrong; the message says what."""


def fail(message: str) -> NoReturn:
    raise ClientFailure(message)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=SCRIPT, description=description)
    p.add_argument("--bootstrap", required=True, help="the gateway's host:port")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up")
    return p


def run(main: Callable[[], Any]) -> None:
    """Run ``main``; print its result as JSON, or fail with a clear message."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        result = main()
    except ClientFailure as error:
        print(f"{SCRIPT}: FAILED: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - any client error is a failure with a trace
        traceback.print_exc()
        print(f"{SCRIPT}: FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.exit(0)


def value_for(seq: int, size: int) -> bytes:
    """The value of record ``seq``: its number, padded to ``size`` bytes with a fixed pattern."""
    head = f"record-{seq:08d}|".encode()
    if size <= len(head):
        return head
    pattern = hashlib.sha256(head).digest()
    body = pattern * ((size - len(head)) // len(pattern) + 1)
    return head + body[: size - len(head)]


def digest(value: bytes | None) -> str:
    return hashlib.sha256(value or b"").hexdigest()[:16]


def record_number(key: bytes | None, where: str = "a record") -> int:
    """The number the producing script wrote as the record's key."""
    if key is None:
        fail(f"{where} has no key")
    return int(key)


def record_summary(
    partition: int, offset: int, key: bytes | None, value: bytes | None
) -> dict[str, Any]:
    """What the tests compare: where a record landed, its number, and its value's size and hash."""
    return {
        "p": partition,
        "o": offset,
        "seq": record_number(key, f"record at {partition}/{offset}"),
        "len": len(value or b""),
        "sha": digest(value),
    }


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    @property
    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end
