"""
Peer proxies to measure beside kgateway, installed into a cache outside the
repository (never into it): grepplabs/kafka-proxy from the Go module proxy,
and Kroxylicious if its distribution can be had from Maven Central.

Each lookup returns what it found or one line saying why not, for the results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

KAFKA_PROXY_MODULE = "github.com/grepplabs/kafka-proxy"
KAFKA_PROXY_VERSION = os.environ.get("KGATEWAY_BENCH_KAFKA_PROXY_VERSION", "latest")
KROXYLICIOUS_VERSION = os.environ.get("KGATEWAY_BENCH_KROXYLICIOUS_VERSION", "0.9.0")


def cache_dir() -> Path:
    """Where peers are installed: C{~/.cache/kgateway/bench} (outside the repository)."""
    return Path(os.environ.get("KGATEWAY_BENCH_CACHE", Path.home() / ".cache/kgateway/bench"))


@dataclass(frozen=True)
class Peer:
    """A peer proxy's binary, or why there is none."""

    name: str
    binary: Path | None
    note: str


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def kafka_proxy() -> Peer:
    """Install grepplabs/kafka-proxy with C{go install} into the cache, once."""
    name = "kafka-proxy"
    found = shutil.which("kafka-proxy")
    binary = Path(found) if found else cache_dir() / "bin" / "kafka-proxy"
    if binary.exists():
        return Peer(name, binary, f"{binary}")
    if shutil.which("go") is None:
        return Peer(name, None, "not measured: no Go toolchain on this machine")
    gopath = cache_dir() / "gopath"
    env = {
        **os.environ,
        "GOPATH": str(gopath),
        "GOBIN": str(binary.parent),
        "GOFLAGS": "-mod=mod",
        "GOMODCACHE": str(gopath / "pkg" / "mod"),
    }
    command = ["go", "install", f"{KAFKA_PROXY_MODULE}@{KAFKA_PROXY_VERSION}"]
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=900, check=False
        )
    except subprocess.TimeoutExpired:
        return Peer(name, None, f"not measured: `{' '.join(command)}` took over 15 minutes")
    if result.returncode != 0 or not binary.exists():
        return Peer(
            name,
            None,
            f"not measured: `{' '.join(command)}` failed: {_last_line(result.stderr)[:300]}",
        )
    return Peer(name, binary, f"{binary} ({KAFKA_PROXY_VERSION})")


def kroxylicious() -> Peer:
    """Ask Maven Central for Kroxylicious' runnable distribution (the app, not the library)."""
    name = "Kroxylicious"
    if shutil.which("mvn") is None:
        return Peer(name, None, "not measured: Maven is not on this machine")
    cache_dir().mkdir(parents=True, exist_ok=True)
    artifact = f"io.kroxylicious:kroxylicious-app:{KROXYLICIOUS_VERSION}:tar.gz:bin"
    command = [
        "mvn",
        "-q",
        "-B",
        "dependency:get",
        f"-Dartifact={artifact}",
        "-Dtransitive=false",
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=300, check=False, cwd=cache_dir()
        )
    except subprocess.TimeoutExpired:
        return Peer(name, None, "not measured: Maven did not answer within 5 minutes")
    if result.returncode != 0:
        return Peer(
            name,
            None,
            f"not measured: Maven Central does not serve its distribution ({artifact}); only "
            "the library modules (kroxylicious-runtime, ...) are published there, and the "
            "runnable app comes as a release download, which cannot be fetched here",
        )
    return Peer(
        name,
        None,
        f"{artifact} resolved, but the bench has no runner for it yet: not measured",
    )
