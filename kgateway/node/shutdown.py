"""How a stopping node lets its client connections go: broker by broker."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from kgateway.interfaces import IRelayedConnection

log = Logger()


def _broker_order(broker_id: int | None) -> tuple[bool, int]:
    # Connections not routed yet first: they stand for no broker's clients.
    return (broker_id is not None, broker_id or 0)


async def drain_broker_by_broker(
    connections: Iterable[IRelayedConnection],
    clock: IReactorTime,
    delay_seconds: float = 0.0,
    timeout_seconds: float = 30.0,
) -> None:
    """
    Drain the connections of one broker at a time, C{delay_seconds} apart,
    as a Kafka rolling restart would, so clients move over without all
    reconnecting at once; then wait for them to close, at most
    C{timeout_seconds} (the reactor cuts what is left once the node stopped).
    """
    by_broker: dict[int | None, list[IRelayedConnection]] = {}
    for connection in connections:
        by_broker.setdefault(connection.broker_id, []).append(connection)
    closing: list[Deferred[None]] = []
    for index, broker_id in enumerate(sorted(by_broker, key=_broker_order)):
        if index and delay_seconds:
            await deferLater(clock, delay_seconds, lambda: None)
        for connection in by_broker[broker_id]:
            closing.append(connection.when_closed())
            connection.drain()
    if not closing:
        return
    drained: Deferred[Any] = DeferredList(closing, consumeErrors=True)
    too_slow = clock.callLater(timeout_seconds, drained.cancel)
    try:
        await drained
    except CancelledError:
        pass
    if too_slow.active():
        too_slow.cancel()
    else:
        log.warn(
            "Connections still draining after {seconds}s; closing them", seconds=timeout_seconds
        )
