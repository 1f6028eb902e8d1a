"""Apache Kafka's jars from Maven Central, downloaded once into a cache outside the repository.

There is no Kafka distribution to unpack: a throwaway POM naming the broker, the tools and a
log4j binding, and C{mvn dependency:copy-dependencies}, give a folder that is the classpath.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KAFKA_VERSION = "4.1.1"
"""The Apache Kafka release whose jars the harness runs."""

LOG4J_VERSION = "2.24.3"
"""log4j2 release that Kafka 4.1.1 itself depends on; the SLF4J 1.x binding must match it."""

# Kafka's artifacts declare slf4j-api 1.7.36, so the binding has to be a 1.x one
# (log4j-slf4j-impl). A 2.x provider such as slf4j-reload4j 2.0.17 is silently ignored by
# slf4j-api 1.7 and the brokers would log nothing at all.
POM = f"""\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kgateway</groupId>
  <artifactId>kafka-dist</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""
"""The POM whose dependencies are the classpath; a change to it makes the cache stale."""

_MARKER_NAME = ".kgateway-complete"

_resolved_libs: dict[Path, Path] = {}


class KafkaDownloadError(RuntimeError):
    """Kafka's jars could not be had; the message says why (Maven's own words included)."""


def default_libs_dir() -> Path:
    """C{$KGATEWAY_KAFKA_CACHE}, or C{~/.cache/kgateway/kafka-<version>/libs}."""
    configured = os.environ.get("KGATEWAY_KAFKA_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "kgateway" / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_kafka_libs(cache_dir: Path | str | None = None) -> Path:
    """Return a folder holding Kafka's classpath, downloading it with Maven if needed.

    C{cache_dir} is the folder of jars itself (default L{default_libs_dir}). A marker
    written only after a complete download makes an interrupted one start again; a file
    lock keeps parallel callers (trial workers, several checkouts) apart.
    """
    libs = Path(cache_dir).expanduser() if cache_dir is not None else default_libs_dir()
    libs = libs.absolute()
    if libs in _resolved_libs:
        return _resolved_libs[libs]
    fingerprint = hashlib.sha256(POM.encode()).hexdigest()
    marker = libs / _MARKER_NAME
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / f".{libs.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _marker_matches(marker, fingerprint):
            print(f"Kafka {KAFKA_VERSION}: using cached jars in {libs}", file=sys.stderr)
        else:
            print(
                f"Kafka {KAFKA_VERSION}: downloading jars with Maven into {libs}",
                file=sys.stderr,
                flush=True,
            )
            _download_libs(libs, fingerprint)
    _resolved_libs[libs] = libs
    return libs


def _marker_matches(marker: Path, fingerprint: str) -> bool:
    try:
        return marker.read_text().split() == [KAFKA_VERSION, fingerprint]
    except OSError:
        return False


def _download_libs(libs: Path, fingerprint: str) -> None:
    # Only ever replace a folder of jars (one whose marker write was interrupted); a cache
    # setting that points somewhere else must not cost the user their files.
    if libs.exists() and any(not entry.name.endswith(".jar") for entry in libs.iterdir()):
        raise KafkaDownloadError(
            f"{libs} exists and holds more than jars; point KGATEWAY_KAFKA_CACHE "
            "at an empty or new folder"
        )
    if shutil.which("mvn") is None:
        raise KafkaDownloadError("Maven ('mvn') is not on PATH; it is needed to fetch Kafka's jars")
    # Build in a sibling folder and rename, so a half-copied folder is never mistaken for libs.
    with tempfile.TemporaryDirectory(prefix=f".{libs.name}-", dir=libs.parent) as work_dir:
        work = Path(work_dir)
        (work / "pom.xml").write_text(POM)
        staging = work / "libs"
        command = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            output = (result.stdout + result.stderr).strip().splitlines()[-20:]
            raise KafkaDownloadError(
                f"'{' '.join(command)}' failed (exit {result.returncode}):\n" + "\n".join(output)
            )
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
    (libs / _MARKER_NAME).write_text(f"{KAFKA_VERSION}\n{fingerprint}\n")
