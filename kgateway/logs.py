"""
JSON logs for log shippers: one JSON object per line.

Either C{GATEWAY_LOG_FORMAT=json}, or twistd's own option::

    twistd -n --logger kgateway.logs.json_observer kgateway

Each line has C{time} (ISO 8601, UTC), C{level}, C{namespace}, the
formatted C{message}, a C{traceback} when one was logged, and the event's
own fields (C{peer}, C{reason}, C{broker} ...) at the top level.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import FileLogObserver, ILogObserver, formatEvent
from twisted.python.components import Componentized

#: Keys of the event dictionary that are Twisted's bookkeeping, not the event's fields.
_BOOKKEEPING = frozenset(
    {"format", "message", "isError", "why", "failure", "printed", "time", "system"}
)
_RESERVED = frozenset({"time", "level", "namespace", "message", "traceback"})


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def event_as_json_line(event: dict[str, Any]) -> str:
    """One log event as one line of JSON."""
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0.0), UTC).isoformat(
            timespec="milliseconds"
        ),
        "level": level.name if level is not None else "info",
        "namespace": event.get("log_namespace", "?"),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if key.startswith("log_") or key in _BOOKKEEPING or key in _RESERVED:
            continue
        record[key] = _plain(value)
    return json.dumps(record, default=str) + "\n"


def json_observer(out: IO[str] | None = None) -> ILogObserver:
    """A log observer writing JSON lines to C{out} (standard output by default)."""
    return FileLogObserver(out if out is not None else sys.stdout, event_as_json_line)


def use_json_logs(application: Componentized) -> None:
    """Make twistd log JSON lines for this application (unless C{--logger} says otherwise)."""
    application.setComponent(ILogObserver, json_observer())
