"""
Peer proxies to measure beside kgateway, installed into a cache outside the
repository (never into it): grepplabs/kafka-proxy built from the source tarball in
the shared folder beside the repository (C{../shared/peers}), and Kroxylicious, whose
library modules Maven Central serves (bench/kroxylicious/).

Each lookup returns what it found or one line saying why not, for the results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import REPO_ROOT

KAFKA_PROXY_COMMIT = "317f1d7"
#: grepplabs/kafka-proxy's source with its vendor/ folder, as the project's shared folder
#: holds it beside the repository (the Go module proxy refuses this module).
KAFKA_PROXY_TARBALL = (
    REPO_ROOT.parent / "shared" / "peers" / f"kafka-proxy-{KAFKA_PROXY_COMMIT}.tar.gz"
)
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
    """Build grepplabs/kafka-proxy from C{KAFKA_PROXY_TARBALL} into the cache, once.

    The tarball carries the module's C{vendor/} folder, so C{go build -mod=vendor} needs no
    network; the source is unpacked in a temporary folder of the cache and removed after
    the build, and only the binary is kept (C{bin/kafka-proxy-<commit>}).
    """
    name = "kafka-proxy"
    binary = cache_dir() / "bin" / f"kafka-proxy-{KAFKA_PROXY_COMMIT}"
    if binary.exists():
        return Peer(name, binary, f"{binary} (commit {KAFKA_PROXY_COMMIT})")
    if not KAFKA_PROXY_TARBALL.is_file():
        return Peer(name, None, f"not measured: no source tarball at {KAFKA_PROXY_TARBALL}")
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        return Peer(name, None, "not measured: no Go toolchain on this machine")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".kafka-proxy-src-", dir=cache_dir()) as work:
        with tarfile.open(KAFKA_PROXY_TARBALL) as tarball:
            tarball.extractall(work, filter="data")
        source = Path(work) / "kafka-proxy"
        staging = binary.with_name(binary.name + ".tmp")
        command = [go, "build", "-o", str(staging), "."]
        env = {**os.environ, "GOFLAGS": "-mod=vendor", "GOPATH": str(cache_dir() / "gopath")}
        try:
            result = subprocess.run(
                command, cwd=source, env=env, capture_output=True, text=True, timeout=1800
            )
        except subprocess.TimeoutExpired:
            return Peer(name, None, "not measured: `go build` took over 30 minutes")
        if result.returncode != 0 or not staging.exists():
            return Peer(
                name,
                None,
                f"not measured: `go build` of {KAFKA_PROXY_TARBALL.name} failed: "
                f"{_last_line(result.stderr)[:300]}",
            )
        staging.rename(binary)
    return Peer(name, binary, f"{binary} (built from {KAFKA_PROXY_TARBALL.name})")


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
