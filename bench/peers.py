"""
Peer proxies to measure beside kgateway, installed into a cache outside the
repository (never into it): grepplabs/kafka-proxy from the Go module proxy,
and Kroxylicious, whose library modules Maven Central serves (bench/kroxylicious/).

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
KROXYLICIOUS_VERSION = os.environ.get("KGATEWAY_BENCH_KROXYLICIOUS_VERSION", "0.12.0")
KROXYLICIOUS_POM = Path(__file__).resolve().parent / "kroxylicious" / "pom.xml"
KROXYLICIOUS_LAUNCHER = KROXYLICIOUS_POM.with_name("Launcher.java")


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
    """Copy Kroxylicious' runtime and its dependencies from Maven Central into the cache, once.

    Its runnable distribution (kroxylicious-app) is not published on Maven Central, but the
    library it wraps is: bench/kroxylicious/Launcher.java starts the proxy from that library.
    The peer's C{binary} is the folder of jars.
    """
    name = "Kroxylicious"
    lib = cache_dir() / f"kroxylicious-{KROXYLICIOUS_VERSION}" / "lib"
    done = lib / ".complete"
    if done.exists():
        return Peer(name, lib, f"kroxylicious-runtime {KROXYLICIOUS_VERSION} ({lib})")
    if shutil.which("mvn") is None:
        return Peer(name, None, "not measured: Maven is not on this machine")
    lib.mkdir(parents=True, exist_ok=True)
    command = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(KROXYLICIOUS_POM),
        "dependency:copy-dependencies",
        f"-Dkroxylicious.version={KROXYLICIOUS_VERSION}",
        f"-DoutputDirectory={lib}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        return Peer(name, None, "not measured: Maven did not fetch it within 10 minutes")
    if result.returncode != 0 or not any(lib.glob("kroxylicious-runtime-*.jar")):
        return Peer(
            name,
            None,
            f"not measured: `{' '.join(command[:6])} ...` failed: "
            f"{_last_line(result.stdout + result.stderr)[:300]}",
        )
    done.touch()
    return Peer(name, lib, f"kroxylicious-runtime {KROXYLICIOUS_VERSION} ({lib})")


#: The peers C{python -m bench --peers} knows, by the name it takes.
FINDERS = {"kafka-proxy": kafka_proxy, "kroxylicious": kroxylicious}
