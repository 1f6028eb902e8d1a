"""
Refuse some topics of a request, let the broker do the rest, and merge the answers.

A broker's own policies answer per topic: one CreateTopics request naming a
good and a bad topic creates the good one and refuses the bad one.  A policy
in the gateway does the same.  It removes the refused entries from the
request (the data path re-encodes a changed request), remembers their
error results under the connection and correlation id, and adds them back
into the broker's response when it passes.  When every entry is refused the
gateway answers alone and the broker never sees the request.

The remembered results live in the connection's L{ClientInfo.state}, so
they go away with the connection, and every policy on the connection sees
them: a later policy that refuses the rest answers for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka.protocol.api_key import ApiKey

from kgateway.interceptors.api import (
    ClientInfo,
    Outcome,
    RequestCall,
    Respond,
    ResponseCall,
)
from kgateway.interceptors.responses import ENTRY_SHAPES
from kgateway.protocol.headers import produce_acks

#: An entry's refusal: (Kafka error code, message for the client).
Refusal = tuple[int, str]


def entries(call: RequestCall) -> list[Any]:
    """The entries (topics, resources) of a request, which L{refuse} refuses one by one."""
    return ENTRY_SHAPES[call.api_key].request_entries(call)


#: Where the refusals in flight live in a connection's L{ClientInfo.state}.
STATE_KEY = "kgateway.partial-refusals"
#: At most this many requests of one connection hold refusals (clients pipeline a few).
MAX_HELD = 1000


@dataclass
class _Held:
    api_key: int
    results: list[Any]


def _held(client: ClientInfo) -> dict[int, _Held]:
    held: dict[int, _Held] = client.state.setdefault(STATE_KEY, {})
    return held


def refuse(call: RequestCall, refusals: Mapping[int, Refusal]) -> Outcome:
    """
    Refuse the entries at the given indexes of C{call}'s request.

    Returns a L{Respond} when no entry is left; otherwise removes the refused
    entries from the request and returns None (send the rest on).  Refusals
    are kept with the connection, so two policies that each refuse part of
    one request both reach the client, whichever of them answers.
    """
    if not refusals:
        return None
    shape = ENTRY_SHAPES[call.api_key]
    attribute = shape.entries(call.api_version)
    request = call.message
    every = list(getattr(request, attribute))
    cls = call.response_class()
    results = [
        shape.refused(cls, every[index], code, message)
        for index, (code, message) in sorted(refusals.items())
    ]
    held = _held(call.client)
    # An earlier policy in the chain may have refused other entries of this request.
    earlier = held.pop(call.correlation_id, None)
    if earlier is not None and earlier.api_key == call.api_key:
        results = earlier.results + results
    if len(refusals) >= len(every):
        return Respond(shape.response(cls, results))
    setattr(request, attribute, [e for i, e in enumerate(every) if i not in refusals])
    call.message = request  # marks the call changed: the reduced request is re-encoded
    if call.api_key == ApiKey.Produce and produce_acks(call.frame, call.api_version) == 0:
        return None  # no response will come to merge into
    while len(held) >= MAX_HELD:
        del held[next(iter(held))]  # the oldest: its answer is long overdue
    held[call.correlation_id] = _Held(call.api_key, results)
    return None


def merge(call: ResponseCall) -> bool:
    """Add the refused entries of C{call}'s request to its response; whether there were any."""
    held = _held(call.client)
    waiting = held.get(call.correlation_id)
    if waiting is None or waiting.api_key != call.api_key:
        return False
    del held[call.correlation_id]
    response = call.message
    attribute = ENTRY_SHAPES[call.api_key].results
    setattr(response, attribute, list(getattr(response, attribute)) + waiting.results)
    call.message = response
    return True


def held_count(client: ClientInfo) -> int:
    """How many of a connection's requests wait for their refusals to be merged."""
    return len(_held(client))
