"""
What a client can make a node hold, and for how long (issue 12): the
node-wide memory budget, the frame limit before a login, the idle and the
frame-arrival deadlines, the listen backlog.  One row each;
C{kgateway.config} lists them.
"""

from __future__ import annotations

from typing import Any

from kgateway.relay.budget import DEFAULT_MAX_BUFFERED_BYTES
from kgateway.relay.pre_auth import DEFAULT_MAX_PRE_AUTH_FRAME_BYTES
from kgateway.setting import Setting, positive_int, positive_milliseconds_as_seconds

MAX_BUFFERED_BYTES = Setting(
    "GATEWAY_MAX_BUFFERED_BYTES",
    "max-buffered-bytes",
    "max_buffered_bytes",
    positive_int,
    str(DEFAULT_MAX_BUFFERED_BYTES),
    "Bytes the node's client connections may hold in all (frames held whole, answers "
    "waiting, send buffers); over it the node stops reading from those holding the most",
)
MAX_PRE_AUTH_FRAME_BYTES = Setting(
    "GATEWAY_MAX_PRE_AUTH_FRAME_BYTES",
    "max-pre-auth-frame-bytes",
    "max_pre_auth_frame_bytes",
    positive_int,
    str(DEFAULT_MAX_PRE_AUTH_FRAME_BYTES),
    "Largest frame from a client that has not logged in yet, where the broker requires SASL "
    "(Kafka's sasl.server.max.receive.size)",
)
CONNECTIONS_MAX_IDLE = Setting(
    "GATEWAY_CONNECTIONS_MAX_IDLE_MS",
    "connections-max-idle-ms",
    "connections_max_idle_seconds",
    positive_milliseconds_as_seconds,
    "600000",
    "A client connection with no request and nothing in flight for this long is closed "
    "(Kafka's connections.max.idle.ms)",
)
REQUEST_RECEIVE_TIMEOUT = Setting(
    "GATEWAY_REQUEST_RECEIVE_TIMEOUT_MS",
    "request-receive-timeout-ms",
    "request_receive_timeout_seconds",
    positive_milliseconds_as_seconds,
    "30000",
    "A request frame must arrive whole within this long of its first byte, or the "
    "connection is closed",
)

LISTEN_BACKLOG = Setting(
    "GATEWAY_LISTEN_BACKLOG",
    "listen-backlog",
    "listen_backlog",
    positive_int,
    "1024",
    "Connections each Kafka port lets wait to be accepted (the kernel caps it at "
    "net.core.somaxconn); Kafka's socket.listen.backlog.size is 50",
)

#: The rows, in the order C{--help} and the README list them.
ROWS: tuple[Setting[Any], ...] = (
    MAX_BUFFERED_BYTES,
    MAX_PRE_AUTH_FRAME_BYTES,
    CONNECTIONS_MAX_IDLE,
    REQUEST_RECEIVE_TIMEOUT,
    LISTEN_BACKLOG,
)
