"""What the figures were measured on: the machine, its load, and the versions of everything."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _first(path: str, key: str) -> str:
    try:
        with open(path) as facts:
            for line in facts:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _output(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"? ({e})"
    lines = (result.stdout + result.stderr).strip().splitlines()
    return lines[0].strip() if lines else "?"


def load() -> float:
    """The one-minute load average."""
    return os.getloadavg()[0]


def describe() -> dict[str, str]:
    """Machine facts and software versions, for the results' header."""
    from harness.kafka import KAFKA_VERSION

    mem_kib = _first("/proc/meminfo", "MemTotal").split()[0]
    facts = {
        "CPU": f"{_first('/proc/cpuinfo', 'model name')} ({os.cpu_count()} logical CPUs, nproc)",
        "memory": f"{int(mem_kib) / 1024 / 1024:.1f} GiB" if mem_kib.isdigit() else "?",
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "Apache Kafka (brokers and Java tools)": KAFKA_VERSION,
        "Java": _output(["java", "-version"]),
    }
    try:
        import twisted

        facts["Twisted"] = twisted.__version__
    except ImportError:  # pragma: no cover - kgateway needs it
        pass
    try:
        import confluent_kafka

        facts["librdkafka (confluent-kafka)"] = (
            f"{confluent_kafka.libversion()[0]} ({confluent_kafka.version()[0]})"
        )
    except ImportError:
        facts["librdkafka (confluent-kafka)"] = "not installed"
    commit = _output(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "kgateway"])
    facts["kgateway"] = commit + (" + uncommitted changes in kgateway/" if dirty != "?" else "")
    return facts
