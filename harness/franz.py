"""The franz-go test client (C{tests/integration/clients/franz}), built once into the cache.

franz-go is a pure-Go Kafka client, the fourth client family of the security tests (beside
Kafka's Java clients, librdkafka and kafka-python): it has its own TLS (Go's crypto/tls) and its
own SCRAM, PLAIN and OAUTHBEARER. The program is built with C{go build} from its C{go.mod}
(franz-go pinned, C{go.sum} committed) through the Go module proxy, into
C{~/.cache/kgateway/franz-client/<digest of the sources>/}, so a changed source builds anew.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from harness import REPO_ROOT

SOURCE = REPO_ROOT / "tests" / "integration" / "clients" / "franz"
"""The Go module of the client: C{go.mod}, C{go.sum}, C{main.go}."""


class GoBuildError(RuntimeError):
    """The franz-go client could not be built; the message carries Go's own words."""


def _go() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if found is None:
        raise GoBuildError("Go ('go') is not on PATH; it builds the franz-go test client")
    return found


def _digest() -> str:
    sha = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        sha.update(name.encode() + b"\0" + (SOURCE / name).read_bytes())
    return sha.hexdigest()[:16]


def cache_dir() -> Path:
    """C{$KGATEWAY_CACHE} or C{~/.cache/kgateway}: where the binary goes."""
    return Path(os.environ.get("KGATEWAY_CACHE", Path.home() / ".cache" / "kgateway"))


def franz_client(timeout: float = 900.0) -> Path:
    """The path of the built client, building it first if this source has not been built."""
    folder = cache_dir() / "franz-client" / _digest()
    binary = folder / "franz-client"
    if binary.exists():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        staging = folder / "franz-client.tmp"
        command = [_go(), "build", "-trimpath", "-o", str(staging), "."]
        # -mod=readonly: the committed go.sum must already name every module (no edits).
        env = {**os.environ, "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"}
        try:
            result = subprocess.run(
                command, cwd=SOURCE, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise GoBuildError(f"`go build` of {SOURCE} took over {timeout:.0f}s") from None
        if result.returncode != 0 or not staging.exists():
            raise GoBuildError(
                f"`go build` in {SOURCE} failed (exit {result.returncode}):\n"
                + (result.stdout + result.stderr).strip()[-2000:]
            )
        staging.rename(binary)
    return binary
