"""
Run one message through the interceptors that want it, in priority order.

Each hook may answer at once or with a Deferred; the chain goes on when it
fires.  A hook that raises closes the connection (a policy that cannot
decide must not let the message through), with the reason logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from kgateway.interceptors.api import Close, Outcome, RequestCall, ResponseCall
from kgateway.interceptors.registry import ActiveInterceptor

log = Logger()


def run_request_chain(
    chain: Sequence[ActiveInterceptor], call: RequestCall
) -> Outcome | Deferred[Outcome]:
    """The chain's outcome for a request: None (send it on), Respond or Close."""
    return _run(chain, call, "on_request", 0)


def run_response_chain(
    chain: Sequence[ActiveInterceptor], call: ResponseCall
) -> Outcome | Deferred[Outcome]:
    """The chain's outcome for a response: None (deliver it), Respond (replace it) or Close."""
    return _run(chain, call, "on_response", 0)


def _run(
    chain: Sequence[ActiveInterceptor], call: Any, hook: str, start: int
) -> Outcome | Deferred[Outcome]:
    for index in range(start, len(chain)):
        active = chain[index]
        try:
            result = getattr(active.interceptor, hook)(call)
        except Exception as e:
            return _failed(active, e)
        if isinstance(result, Deferred):
            return ensureDeferred(_continue(chain, call, hook, index, result))
        if result is not None:
            return cast(Outcome, result)
    return None


async def _continue(
    chain: Sequence[ActiveInterceptor], call: Any, hook: str, index: int, pending: Deferred[Any]
) -> Outcome:
    try:
        result = await pending
    except Exception as e:
        return _failed(chain[index], e)
    if result is not None:
        return cast(Outcome, result)
    rest = _run(chain, call, hook, index + 1)
    if isinstance(rest, Deferred):
        return await rest
    return rest


def _failed(active: ActiveInterceptor, error: Exception) -> Close:
    log.failure(
        "Interceptor {name} ({plugin}) failed",
        name=active.name,
        plugin=active.spec.plugin,
    )
    return Close(f"interceptor {active.name} failed: {error!r}")
