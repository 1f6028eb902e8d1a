"""The port plan: one gateway port per broker id."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PortPlan:
    """
    Port = C{start} + (broker id - C{min_broker_id}), for C{count} ports.

    Every port is also a bootstrap port: a connection on a port whose broker
    does not exist is relayed to any live broker.
    """

    start: int
    count: int
    min_broker_id: int = 0

    @property
    def ports(self) -> range:
        """Every port the node listens on."""
        return range(self.start, self.start + self.count)

    def port_for(self, broker_id: int) -> int | None:
        """The port for a broker, or None when the id falls outside the plan."""
        offset = broker_id - self.min_broker_id
        if 0 <= offset < self.count:
            return self.start + offset
        return None

    def broker_for(self, port: int) -> int:
        """The broker id a port stands for."""
        return self.min_broker_id + (port - self.start)

    def out_of_range_fix(self, broker_id: int) -> str:
        """A sentence saying how to make room for a broker id."""
        if broker_id < self.min_broker_id:
            return f"set GATEWAY_MIN_BROKERID to {broker_id} or lower"
        need = broker_id - self.min_broker_id + 1
        return f"set GATEWAY_PORT_COUNT to {need} or more"
