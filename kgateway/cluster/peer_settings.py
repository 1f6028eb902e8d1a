"""
How often gateway nodes check each other directly, and when a peer is down
(issue 12 item 4).  One row each; C{kgateway.config} lists them.
"""

from __future__ import annotations

from typing import Any

from kgateway.cluster.peer_checks import (
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_MISSES,
    DEFAULT_TIMEOUT_SECONDS,
)
from kgateway.setting import (
    Setting,
    milliseconds_as_seconds,
    positive_int,
    positive_milliseconds_as_seconds,
)

PEER_CHECK_INTERVAL = Setting(
    "GATEWAY_PEER_CHECK_INTERVAL_MS",
    "peer-check-interval-ms",
    "peer_check_interval_seconds",
    milliseconds_as_seconds,
    str(round(DEFAULT_INTERVAL_SECONDS * 1000)),
    "How often a node asks each peer in its roster an ApiVersions round trip; a peer that "
    "does not answer is left out of the node's mappings until it does (0: no checks, the "
    "group alone says who is live)",
)
PEER_CHECK_TIMEOUT = Setting(
    "GATEWAY_PEER_CHECK_TIMEOUT_MS",
    "peer-check-timeout-ms",
    "peer_check_timeout_seconds",
    positive_milliseconds_as_seconds,
    str(round(DEFAULT_TIMEOUT_SECONDS * 1000)),
    "A peer check not answered within this long has failed",
)
PEER_CHECK_MISSES = Setting(
    "GATEWAY_PEER_CHECK_MISSES",
    "peer-check-misses",
    "peer_check_misses",
    positive_int,
    str(DEFAULT_MISSES),
    "Failed peer checks in a row (refused, closed, or timed out) that make a peer down",
)

#: The rows, in the order C{--help} and the README list them.
ROWS: tuple[Setting[Any], ...] = (PEER_CHECK_INTERVAL, PEER_CHECK_TIMEOUT, PEER_CHECK_MISSES)
