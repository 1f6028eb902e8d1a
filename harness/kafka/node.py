"""One node of a harness Kafka cluster: a combined broker+controller JVM and its files."""

from __future__ import annotations

import time
from pathlib import Path

from harness.children import ChildError, ChildProcess
from harness.kafka.properties import BrokerInfo
from harness.kafka.tools import KAFKA_MAIN, java_command

RUN_MARKER = "==== kgateway: starting node"
"""The line each run of a node starts its log with (a restarted node appends)."""


class KafkaClusterError(ChildError):
    """The Kafka cluster could not be built, started or stopped as asked."""


class KafkaNode(ChildProcess):
    """The JVM of one node, in a folder of its own (C{server.properties}, C{data/}).

    Its log is C{node-<id>.log} beside that folder. It runs in a process group of its own,
    so a Ctrl-C in a terminal reaches only Python, which stops the brokers in order.
    Readiness is the cluster's business (every broker must list every other), so the
    cluster spawns its nodes and then waits for all of them at once.
    """

    error = KafkaClusterError
    own_process_group = True

    def __init__(
        self,
        info: BrokerInfo,
        controller_port: int,
        directory: Path,
        heap: str,
        log4j_config: Path,
    ) -> None:
        """A node (not started) whose files go in C{directory}."""
        super().__init__(
            f"node {info.node_id}",
            directory.parent / f"node-{info.node_id}.log",
            cwd=directory,
        )
        self.info = info
        self.controller_port = controller_port
        self.directory = directory
        self.heap = heap
        self.log4j_config = log4j_config

    @property
    def config_path(self) -> Path:
        """The node's C{server.properties}."""
        return self.directory / "server.properties"

    @property
    def data_dir(self) -> Path:
        """The node's C{log.dirs}: its KRaft metadata and topic data."""
        return self.directory / "data"

    def command(self) -> list[str]:
        """C{kafka.Kafka server.properties} with the cluster's heap and log4j settings."""
        return java_command(
            KAFKA_MAIN, str(self.config_path), heap=self.heap, log4j_config=self.log4j_config
        )

    def banner(self) -> bytes:
        """A line marking where this run's output begins."""
        return f"{RUN_MARKER} {self.info.node_id} at {time.ctime()}\n".encode()

    def log_excerpt(self, errors: int = 8, tail: int = 15) -> str:
        """The first error lines and the last lines of the latest run, indented."""
        if not self.log_path.exists():
            return f"    (no log at {self.log_path})"
        lines = self.log_since_start().splitlines()
        # A shutdown after a fatal error logs pages of noise; the cause is in the first errors.
        found: list[str] = []
        for line in lines:
            if (" ERROR " in line or " FATAL " in line or line.startswith("Caused by:")) and (
                line not in found
            ):
                found.append(line)
                if len(found) == errors:
                    break
        parts = []
        if found:
            parts += ["    errors:"] + [f"      {line}" for line in found]
            parts.append("    last lines:")
        parts += [f"      {line}" for line in lines[-tail:]]
        return "\n".join(parts)
