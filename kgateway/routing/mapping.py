"""Which gateway address a client is given for each broker."""

from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from kgateway.interfaces import Endpoint, INodeMapper, INodeMapping
from kgateway.routing.ports import PortPlan

log = Logger()


@implementer(INodeMapping)
class FixedHostMapping:
    """Every broker on one host, at the broker's port: this node alone, or a load balancer."""

    def __init__(self, host: str, plan: PortPlan, warn: set[int]) -> None:
        self._host = host
        self._plan = plan
        self._warned = warn

    def endpoint_for(self, broker_id: int) -> Endpoint | None:
        """The advertised host at the broker's port, or None when the id is off the plan."""
        port = self._plan.port_for(broker_id)
        if port is None:
            if broker_id not in self._warned:
                self._warned.add(broker_id)
                log.error(
                    "Broker {broker_id} has no gateway port: ports {first}-{last} cover "
                    "broker ids {low}-{high}; {fix}. Clients are not told about this broker.",
                    broker_id=broker_id,
                    first=self._plan.start,
                    last=self._plan.start + self._plan.count - 1,
                    low=self._plan.min_broker_id,
                    high=self._plan.min_broker_id + self._plan.count - 1,
                    fix=self._plan.out_of_range_fix(broker_id),
                )
            return None
        return Endpoint(self._host, port)


@implementer(INodeMapper)
class FixedHostMapper:
    """Hands out the same host for every broker (a single node, or external load balancing)."""

    def __init__(self, host: str, plan: PortPlan) -> None:
        self._host = host
        self._plan = plan
        self._warned: set[int] = set()

    def mapping(self) -> INodeMapping:
        """The mapping onto the fixed host."""
        return FixedHostMapping(self._host, self._plan, self._warned)
