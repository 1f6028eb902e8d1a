"""
The integration tests' shared environment: one real 3-broker Kafka cluster
(racks a, b, c) and one real C{twistd kgateway} node in front of it, started
once for the whole run and torn down when the process exits.

Clients run as separate processes under C{strace -e trace=connect}; every
run is checked to have reached the gateway and never a broker.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from twisted.trial.unittest import SkipTest

from harness.connect_audit import (
    assert_never_connected,
    audited_command,
    connected_addresses,
)
from harness.gateway_process import GatewayProcess
from harness.kafka import KafkaCluster, ensure_kafka_libs, java_tool_command

CLIENTS = Path(__file__).parent / "clients"
_counter = itertools.count()


@dataclass
class Environment:
    """The running cluster and gateway, and how to run audited clients against them."""

    cluster: KafkaCluster
    gateway: GatewayProcess
    workdir: Path

    @property
    def bootstrap(self) -> str:
        """Where clients bootstrap: the gateway, never a broker."""
        return self.gateway.bootstrap

    @property
    def forbidden_ports(self) -> set[int]:
        """Ports no client may ever connect to: every broker and controller listener."""
        return self.cluster.broker_ports | self.cluster.controller_ports

    def all_brokers_running(self, timeout: float = 300.0) -> None:
        """Start every broker a test stopped: other tests share the cluster (a cleanup)."""
        cluster = self.cluster
        for info in cluster.brokers:
            if info.node_id not in cluster.running_node_ids():
                cluster.start_broker(info.node_id, timeout=timeout)

    def run(
        self,
        name: str,
        command: list[str],
        timeout: float = 120,
        check: bool = True,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a client under strace; fail if it failed or ever connected to a broker."""
        trace = self.workdir / f"{next(_counter):03d}-{name}.strace"
        result = subprocess.run(
            audited_command(command, trace),
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{name} exited with {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
                f"stderr:\n{result.stderr[-3000:]}\ngateway log:\n{self.gateway.log_tail()}"
            )
        assert_never_connected(trace, self.forbidden_ports)
        reached = {port for _, port in connected_addresses(trace)}
        if not reached & set(self.gateway.ports):
            raise AssertionError(f"{name} never connected to a gateway port: {sorted(reached)}")
        return result

    def python_client(
        self, script: str, *args: str, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the client scripts in C{tests/integration/clients}."""
        return self.run(
            script,
            [sys.executable, str(CLIENTS / script), "--bootstrap", self.bootstrap, *args],
            **kwargs,  # type: ignore[arg-type]
        )

    def java_tool(
        self, name: str, main_class: str, *args: str, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        """Run one of Kafka's Java tools."""
        return self.run(name, java_tool_command(main_class, *args), **kwargs)  # type: ignore[arg-type]


_shared: Environment | None = None


def shared() -> Environment:
    """Start the cluster and gateway on first use; later calls get the same ones."""
    global _shared
    if os.environ.get("KGATEWAY_SKIP_INTEGRATION") == "1":
        raise SkipTest("KGATEWAY_SKIP_INTEGRATION=1")
    if _shared is None:
        ensure_kafka_libs()
        workdir = Path(tempfile.mkdtemp(prefix="kgateway-it-"))
        if os.environ.get("KGATEWAY_KEEP_LOGS") != "1":
            # Registered first, so it runs last: after the gateway and brokers stopped.
            atexit.register(shutil.rmtree, workdir, True)
        cluster = KafkaCluster(size=3, base_dir=workdir / "kafka", racks=("a", "b", "c"))
        cluster.start()
        atexit.register(cluster.stop)
        gateway = GatewayProcess(cluster.bootstrap_servers, workdir / "gateway.log")
        try:
            gateway.start()
        except BaseException:
            cluster.stop()
            raise
        atexit.register(gateway.stop)
        _shared = Environment(cluster, gateway, workdir)
    return _shared
