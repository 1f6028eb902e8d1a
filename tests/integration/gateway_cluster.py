"""
Several real gateway nodes forming one gateway cluster in front of the shared
Kafka cluster, each with its own rack, port range and log.
"""

from __future__ import annotations

import atexit
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from twisted.trial.unittest import TestCase

from harness.gateway_process import GatewayProcess
from harness.probe import advertised_brokers

from .environment import Environment

#: Short timeouts so a crashed node is noticed quickly (Kafka's minimum is 6 s).
FAST_GROUP = {
    "GATEWAY_GROUP_SESSION_TIMEOUT_MS": "6000",
    "GATEWAY_GROUP_HEARTBEAT_INTERVAL_MS": "200",
}


@dataclass
class GatewayCluster:
    """Gateway nodes that share one GATEWAY_CLUSTER_ID."""

    env: Environment
    name: str = field(default_factory=lambda: f"it{uuid.uuid4().hex[:8]}")
    nodes: list[GatewayProcess] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def ready(
        cls,
        env: Environment,
        racks: Sequence[str],
        ready: Callable[[GatewayProcess], bool],
        what: str,
        **settings: str,
    ) -> GatewayCluster:
        """A cluster of one node per rack in C{racks} (each with C{settings} in its
        environment), once C{ready} holds for every node."""
        cluster = cls(env)
        try:
            for rack in racks:
                cluster.add(rack, True, **settings)
            for node in cluster.nodes:
                cluster.wait_for(
                    lambda node=node: ready(node), timeout=60, what=f"{node.log_path.name} {what}"
                )
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def add(self, rack: str | None, start: bool = True, **env: str) -> GatewayProcess:
        """Start one more node in C{rack}."""
        index = len(self.nodes)
        node = GatewayProcess(
            self.env.cluster.bootstrap_servers,
            self.env.workdir / self.name / f"node{index}-{rack}.log",
            env={
                "GATEWAY_CLUSTER_ID": self.name,
                **({"GATEWAY_RACK_ID": rack} if rack else {}),
                **FAST_GROUP,
                **self.extra_env,
                **env,
            },
        )
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def stop(self) -> None:
        """Stop every node still running."""
        for node in self.nodes:
            node.stop()

    def owner_of(self, port: int) -> GatewayProcess:
        """The node whose port range holds C{port}, running or not (ranges are never reused)."""
        for node in reversed(self.nodes):
            if port in node.ports:
                return node
        raise AssertionError(f"port {port} belongs to no gateway node")

    def mapping(
        self, via: GatewayProcess, client_id: str = "kgateway-probe"
    ) -> dict[int, GatewayProcess]:
        """Broker id → the node a metadata request through C{via} hands out for it."""
        brokers = advertised_brokers(via.advertised_host, via.port_start, client_id=client_id)
        return {broker: self.owner_of(port) for broker, (_, port) in brokers.items()}

    def wait_for(
        self, condition: Callable[..., bool], timeout: float = 30.0, what: str = "condition"
    ) -> float:
        """Poll C{condition} every 50 ms; return how long it took."""
        # (Callable[..., bool]: called with no arguments, but mypy can type a lambda that
        # binds a loop variable as a default, `lambda node=node: ...`, only against `...`.)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if condition():
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.05)
        logs = "\n".join(f"--- {n.log_path.name}\n{n.log_tail(15)}" for n in self.nodes)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")

    def handed_out(self, via: GatewayProcess, requests: int = 12) -> set[Path]:
        """Which nodes (by log path) C{requests} different clients are handed through C{via}."""
        seen: set[Path] = set()
        for client in range(requests):
            seen.update(node.log_path for node in self.mapping(via, f"probe-{client}").values())
        return seen

    def live(self, nodes: Sequence[GatewayProcess]) -> set[Path]:
        """Log paths identifying C{nodes}."""
        return {node.log_path for node in nodes}


T = TypeVar("T")


class SharedByTests(Generic[T]):
    """
    Something slow to start (gateway nodes) that the tests of one TestCase share.

    trial has no setUpClass: the first test's setUp starts it, and it stops after the
    last test of that class has cleaned up, or at exit when only some tests ran.
    """

    def __init__(self, start: Callable[[], T], stop: Callable[[T], object]) -> None:
        self._start = start
        self._stop = stop
        self._value: T | None = None
        self._remaining = 0

    def acquire(self, test: TestCase) -> T:
        """The shared value for C{test}, started if this is the first test to ask."""
        if self._value is None:
            self._remaining = len([n for n in dir(type(test)) if n.startswith("test_")])
            value = self._value = self._start()
            atexit.register(self._stop, value)
        test.addCleanup(self._release)
        return self._value

    def _release(self) -> None:
        self._remaining -= 1
        if self._remaining == 0 and self._value is not None:
            value, self._value = self._value, None
            self._stop(value)
